"""Which webhook URLs `arqgraph serve` takes (`arqgraph.server.webhook_policy`), held to what
LangGraph's server answers: each policy of `langgraph.json`'s `webhooks.url` section, run on
the same URLs by our check and by langgraph-api's own (in a process of its own, configured as
`langgraph dev` configures it, through `LANGGRAPH_WEBHOOKS`). Both must take the same URLs and
refuse the others with the same `detail`. The hosts used need no DNS answer but `.invalid`'s,
which never resolves. The rest of the section (headers, fields sent) loads as LangGraph loads
it. Live servers refuse and call webhooks in tests/test_serve_scopes.py and
tests/test_serve_duties.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from arqgraph.loader import GraphSpecError
from arqgraph.server.webhook_policy import WebhookPolicy, WebhookRefused, Webhooks

URLS = [
    "/hooks/done", "//elsewhere.example/h", "not-a-url", "http:///x", "ftp://hooks.example.com/x",
    "http://127.0.0.1:9/h", "http://127.1.2.3/h", "http://localhost:9/h", "https://localhost/h",
    "http://LOCALHOST/h", "https://host.docker.internal/h", "http://[::1]:9/h",
    "http://[::ffff:127.0.0.1]/h", "http://0.0.0.0/x", "http://10.0.0.1/h",
    "http://192.168.1.5:80/h", "http://100.100.100.200/x", "http://[fd00:ec2::254]/x",
    "http://169.254.169.254/x", "http://metadata/x", "http://metadata.google.internal/x",
    "http://a.svc.cluster.local/x", "http://[fe80::1]/x", "http://224.0.0.1/x",
    "https://hooks.example.com/h", "https://HOOKS.example.com:443/h",
    "https://x.mycorp.com/h", "https://mycorp.com/h", "https://example.com:8443/h",
    "https://no-such-host.invalid/h", "http://8.8.8.8/h", "https://8.8.8.8:8443/h",
    "https://hooks.example.com/" + "a" * 2100, "https://hooks.example.com/" + "a" * 5000,
]
POLICIES: list[dict[str, Any] | None] = [
    None,  # (no webhooks section: LangGraph's defaults)
    {"url": {}},
    {"url": {"disable_loopback": False}},  # (a section given: https is now required)
    {"url": {"disable_loopback": False, "require_https": False, "max_url_length": 3000}},
    {"url": {"allowed_domains": ["hooks.example.com", "*.mycorp.com"], "allowed_ports": [443],
             "require_https": False, "disable_private_ips": True}},
    {"url": {"disable_private_ips": True, "require_https": False}},
]
LANGGRAPHS_CHECK = """
import asyncio, json, sys
from langgraph_api.webhook import validate_webhook_url_or_raise

async def main():
    answers = []
    for url in json.loads(sys.argv[1]):
        try:
            await validate_webhook_url_or_raise(url)
            answers.append(None)
        except Exception as exc:
            answers.append([getattr(exc, "status_code", None), getattr(exc, "detail", str(exc))])
    print(json.dumps(answers))

asyncio.run(main())
"""


def langgraphs_answers(webhooks: dict[str, Any] | None) -> list[Any]:
    """What langgraph-api answers each URL under the section, as `langgraph dev` sets it."""
    env = {**os.environ, "REDIS_URI": "redis://unused", "DATABASE_URI": "unused",
           "LANGGRAPH_RUNTIME_EDITION": "inmem", "LANGSMITH_TRACING": "false"}
    env.pop("LANGGRAPH_WEBHOOKS", None)
    if webhooks is not None:
        env["LANGGRAPH_WEBHOOKS"] = json.dumps(webhooks)
    done = subprocess.run([sys.executable, "-c", LANGGRAPHS_CHECK, json.dumps(URLS)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def our_answers(webhooks: dict[str, Any] | None) -> list[Any]:
    policy = Webhooks.from_project(webhooks, "langgraph.json").policy
    answers: list[Any] = []
    for url in URLS:
        try:
            await policy.check(url)
            answers.append(None)
        except WebhookRefused as exc:
            answers.append([422, str(exc)])
    return answers


@pytest.mark.parametrize("webhooks", POLICIES, ids=json.dumps)
def test_webhook_urls_are_taken_and_refused_as_langgraph_does(
        webhooks: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGGRAPH_WEBHOOKS", raising=False)
    ours = asyncio.run(our_answers(webhooks))
    theirs = langgraphs_answers(webhooks)
    assert dict(zip(URLS, ours, strict=True)) == dict(zip(URLS, theirs, strict=True))
    assert None in ours and any(ours)  # (each policy takes some URLs and refuses others)


def test_the_webhooks_section_loads_as_langgraph_loads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LG_WEBHOOK_TOKEN", "s3cret")
    monkeypatch.setenv("OTHER_SECRET", "no")
    hooks = Webhooks.from_project({"headers": {"authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}",
                                               "x-plain": "yes"},
                                   "allowed_fields": ["run_id", "status"]}, "langgraph.json")
    assert dict(hooks.headers) == {"authorization": "Bearer s3cret", "x-plain": "yes"}
    assert hooks.payload({"run_id": "r", "status": "success", "values": {}}) == {
        "run_id": "r", "status": "success"}
    assert Webhooks().payload({"values": 1}) == {"values": 1}  # (no allowed_fields: all)
    own_prefix = Webhooks.from_project({"env_prefix": "OTHER_", "headers": {
        "x": "${{ env.OTHER_SECRET }}"}}, "langgraph.json")
    assert dict(own_prefix.headers) == {"x": "no"}
    for wrong, says in [
            ({"headers": {"x": "${{ env.OTHER_SECRET }}"}}, "must start with the configured"),
            ({"headers": {"x": "${{ env.LG_WEBHOOK_NONE }}"}}, "missing required environment"),
            ({"headers": {"x": "${{ secrets.X }}"}}, "may only read env.VAR"),
            ({"headers": {"x": 3}}, "values must be strings"),
            ({"allowed_fields": ["run_id", "password"]}, "allowed_fields must list"),
            ({"url": {"allowed_domains": ["hooks.*.com"]}}, "wildcard can only be used"),
            ({"url": {"allowed_domains": [""]}}, "list of non-empty strings"),
            ({"url": {"allowed_ports": ["443"]}}, "list of port numbers")]:
        with pytest.raises(GraphSpecError, match=says):
            Webhooks.from_project(wrong, "langgraph.json")
    # As LangGraph reads it: the variable stands in for a file without the section.
    monkeypatch.setenv("LANGGRAPH_WEBHOOKS", '{"url": {"disable_loopback": false}}')
    assert Webhooks.from_project(None, "langgraph.json").policy == WebhookPolicy(
        require_https=True, max_url_length=2048, disable_loopback=False)
    assert Webhooks.from_project({}, "langgraph.json").policy == WebhookPolicy()
