"""docs/deploying.md's Kubernetes manifests: they parse, their commands and `ARQGRAPH_*`
variables are arqgraph's, and KEDA watches the key the workers' queue really uses. (No
Kubernetes runs here: this keeps the example from drifting away from the code.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from arqgraph import protocol
from arqgraph.cli import build_parser
from arqgraph.settings import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploying.md"


def manifests() -> dict[str, dict[str, Any]]:
    """The Kubernetes section's YAML documents, by kind (and name for Deployments)."""
    section = DOC.read_text().split("## Kubernetes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "one YAML block in the Kubernetes section"
    docs = [d for d in yaml.safe_load_all(blocks[0]) if d]
    return {d["kind"] if d["kind"] != "Deployment" else d["metadata"]["name"]: d for d in docs}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def test_the_manifests_parse_and_name_what_exists() -> None:
    found = manifests()
    assert set(found) == {"Secret", "arqgraph-orchestrator", "arqgraph-worker",
                          "TriggerAuthentication", "ScaledObject"}
    secret = found["Secret"]
    for name in ("arqgraph-orchestrator", "arqgraph-worker"):
        deployment = found[name]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for container in containers(deployment):
            args = build_parser(Settings()).parse_args(container["args"])
            assert args.command == name.removeprefix("arqgraph-")
            env = {e["name"]: e for e in container["env"]}
            for variable in env:  # (each a setting the processes read)
                assert variable.startswith(ENV_PREFIX)
                assert variable.removeprefix(ENV_PREFIX).lower() in Settings.model_fields
            url = env["ARQGRAPH_REDIS_URL"]["valueFrom"]["secretKeyRef"]
            password = env["ARQGRAPH_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
            for ref in (url, password):
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"]
    scaled = found["ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "arqgraph-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    worker_args = build_parser(Settings()).parse_args(
        containers(found["arqgraph-worker"])[0]["args"])
    assert trigger["metadata"]["listName"] == protocol.ready_key(worker_args.queue)
    auth = found["TriggerAuthentication"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
