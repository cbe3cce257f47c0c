"""`arqgraph dashboard` on a real cluster (a real redis-server, orchestrator and worker
processes): its JSON endpoints answer what `arqgraph.admin` does, it refuses control unless
allowed and strangers without its token; and in a real headless Chromium (Debian's, driven by
Playwright: no browser is downloaded) the page lists a run, draws its graph with the failed
node, shows the worker's traceback, and resumes an interrupted run through its form."""

from __future__ import annotations

import asyncio
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from arqgraph.cli import main
from arqgraph.client import Client
from bench.cluster import free_port
from tests.conftest import ArqProcesses, missing, wait_for
from tests.test_cluster import STARTUP_LIMIT
from tests.test_operations import LONELY_QUEUE, Pool, submit
from tests.test_operations import pool as operations_pool

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from arqgraph.dashboard.app import build_app  # noqa: E402

pool = operations_pool  # the operations tests' cluster: ops graphs, a worker, a lonely graph
TOKEN = "dash-secret"
BROWSER_WAIT_MS = 30_000  # the bound of any wait in the browser (2 slow cores)
SCREENSHOT_ENV = "ARQGRAPH_DASHBOARD_SCREENSHOT"  # where to save a picture of the page, if set


async def _run(url: str, graph: str, data: Any, thread_id: str | None = None) -> str:
    """Submit a run and wait for its end (done, failed or interrupted); its id."""
    client = await Client.connect(url)
    try:
        config = {"configurable": {"thread_id": thread_id}} if thread_id else None
        handle = await client.submit(graph, data, config)
        await asyncio.wait_for(handle.end(), STARTUP_LIMIT)
        return handle.run_id
    finally:
        await client.close()


def run(url: str, graph: str, data: Any, thread_id: str | None = None) -> str:
    """(In a thread of its own: Playwright's sync API keeps a loop running in this one.)"""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _run(url, graph, data, thread_id)).result()


def dashboard(url: str, **options: Any) -> TestClient:
    """The app in this process, asked as a browser on this machine asks it."""
    return TestClient(build_app(url, **options), base_url="http://127.0.0.1:8080")


def test_the_json_endpoints_show_the_pool_and_its_runs(pool: Pool) -> None:
    failed = run(pool.url, "ops_boom", {})
    asked = run(pool.url, "ops_ask", {}, thread_id="t-dash-json")
    with dashboard(pool.url, allow_control=True) as http:
        overview = wait_for(lambda: (o := http.get("/api/overview").json())["workers"] and o,
                            STARTUP_LIMIT, "the worker's heartbeat")
        assert [w["pid"] for w in overview["workers"]] == [pool.worker.pid]
        assert {"ops_ask", "ops_boom"} <= {g["name"] for g in overview["graphs"]}
        queues = {q["queue"]: q for q in overview["queues"]}
        assert queues["arqgraph:queue"]["workers"] == 1
        assert queues["arqgraph:queue"]["concurrency"] == 8
        assert queues[LONELY_QUEUE]["workers"] == 0  # (the lonely graph's: no worker)
        assert overview["problems"] == [f"graph 'ops_lonely': no live worker on queue "
                                        f"{LONELY_QUEUE!r}"]
        assert overview["control"] is True

        runs = {r["run_id"]: r for r in http.get("/api/runs").json()}
        assert runs[failed]["status"] == "failed" and runs[asked]["status"] == "interrupted"
        assert [r["run_id"] for r in http.get("/api/runs?graph=ops_boom").json()] == [failed]
        assert [r["run_id"] for r in http.get("/api/runs?status=interrupted").json()] == [asked]

        error = http.get(f"/api/runs/{failed}").json()["error"]
        assert error["node"] == "explode" and "in explode" in error["traceback"]
        steps = http.get(f"/api/runs/{failed}/timeline").json()
        assert [(s["step"], [(t["node"], t["state"]) for t in s["tasks"]]) for s in steps] == [
            (-1, [("__start__", "done")]), (0, [("explode", "failed")])]
        assert steps[0]["took"] >= 0 and steps[1]["took"] is None
        explode = steps[1]["tasks"][0]  # who ran it, when, for how long
        assert f"-{pool.worker.pid}-" in explode["worker"] and explode["took"] >= 0
        assert explode["since"] >= steps[1]["began"]
        assert http.get(f"/api/runs/{failed}/events").json()[-1]["mode"] == "end"

        drawing = http.get("/api/graphs/ops_ask/drawing").json()
        assert drawing["nodes"] == ["__start__", "ask_name", "greet", "__end__"]
        assert {"source": "ask_name", "target": "greet", "conditional": False,
                "label": None} in drawing["edges"]
        assert "ask_name --> greet" in drawing["mermaid"]
        assert http.get("/api/graphs/nope/drawing").status_code == 404
        assert http.get("/api/runs/nope").status_code == 404

        status = http.get(f"/api/runs/{asked}").json()
        assert [i["value"] for i in status["interrupts"]] == [{"question": "name?"}]
        [state] = http.get("/api/threads/t-dash-json/state").json()
        assert state["next"] == ["ask_name"]
        answer = http.post("/api/threads/t-dash-json/resume",
                           json={"value": "Ada", "graph": "ops_ask"})
        assert answer.status_code == 200, answer.text
        resumed = answer.json()["run_id"]
        done = wait_for(lambda: (s := http.get(f"/api/runs/{resumed}").json())["status"]
                        == "done" and s, STARTUP_LIMIT, "the resumed run to finish")
        assert done["thread_id"] == "t-dash-json"
        history = http.get("/api/threads/t-dash-json/state?history=1").json()
        assert history[0]["values"] == {"name": "Ada", "log": ["hello Ada"]}


def test_a_running_task_shows_its_worker_and_queue_and_can_be_cancelled(
    pool: Pool, tmp_path: Path
) -> None:
    release = tmp_path / "release"  # (never made: the node holds until cancelled)
    held = asyncio.run(submit(pool.url, "ops_held", {"release": str(release)}))
    with dashboard(pool.url, allow_control=True) as http:
        def running() -> dict[str, Any] | None:
            steps = http.get(f"/api/runs/{held}/timeline").json()
            tasks = steps[-1]["tasks"] if steps else []
            return tasks[0] if tasks and tasks[0]["worker"] else None

        task = wait_for(running, STARTUP_LIMIT, "the held task on its worker's heartbeat")
        assert task["node"] == "hold" and task["state"] == "running"
        assert f"-{pool.worker.pid}-" in task["worker"] and task["since"] > 0
        queue = next(q for q in http.get("/api/overview").json()["queues"]
                     if q["queue"] == "arqgraph:queue")
        assert queue["running"] == 1 and queue["depth"] == 1 and queue["oldest_age"] >= 0

        assert http.post(f"/api/runs/{held}/cancel", json={}).json()["status"] == "cancelling"
        wait_for(lambda: http.get(f"/api/runs/{held}").json()["status"] == "cancelled",
                 STARTUP_LIMIT, "the held run to be cancelled")


def test_control_is_refused_unless_allowed_and_strangers_need_the_token(pool: Pool) -> None:
    asked = run(pool.url, "ops_ask", {}, thread_id="t-dash-refused")
    with dashboard(pool.url) as http:
        assert http.get("/api/runs").status_code == 200
        refused = http.post("/api/threads/t-dash-refused/resume", json={"value": "x"})
        assert refused.status_code == 403 and "--allow-control" in refused.json()["detail"]
        assert http.post(f"/api/runs/{asked}/cancel", json={}).status_code == 403
        # a page of another site that renamed itself to this machine (DNS rebinding)
        assert http.get("/api/runs", headers={"host": "evil.example"}).status_code == 403
    with dashboard(pool.url, allow_control=True) as http:
        # a form posted by another site is not JSON: refused before anything is done
        form = http.post(f"/api/runs/{asked}/cancel", data={"x": "1"})
        assert form.status_code == 415
    with dashboard(pool.url, token=TOKEN) as http:
        assert http.get("/api/runs").status_code == 401
        assert http.get("/").status_code == 401
        assert http.get("/api/runs", headers={"x-arqgraph-token": "wrong"}).status_code == 401
        assert http.get("/api/runs", headers={"x-arqgraph-token": TOKEN}).status_code == 200
        assert http.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"}
                        ).status_code == 200
        page = http.get(f"/?token={TOKEN}")
        assert page.status_code == 200
        assert f'src="static/dashboard.js?token={TOKEN}"' in page.text  # the page keeps it
        assert http.get(f"/static/dashboard.js?token={TOKEN}").status_code == 200
        assert http.get("/static/dashboard.js").status_code == 401
    assert run_status(pool.url, asked) == "interrupted"  # nothing refused was done


def run_status(url: str, run_id: str) -> str:
    async def status() -> str:
        client = await Client.connect(url)
        try:
            return await client.handle(run_id).status()
        finally:
            await client.close()
    return asyncio.run(status())


def test_listening_beyond_localhost_needs_a_token(capsys, monkeypatch) -> None:
    monkeypatch.delenv("ARQGRAPH_DASHBOARD_TOKEN", raising=False)
    code = main(["dashboard", "--host", "0.0.0.0", "--redis", "redis://127.0.0.1:1/0"])
    assert code == 2
    assert "give it a token" in capsys.readouterr().err


def _chromium() -> str:
    """Debian's chromium; missing, the test is skipped, or fails in CI (CI=true)."""
    import importlib.util

    found = shutil.which("chromium")
    if found is None or importlib.util.find_spec("playwright") is None:
        missing("the browser test needs Debian's chromium (apt-get install chromium) and "
                "playwright (the test extra)")
    return found


def test_the_page_in_a_real_browser_shows_runs_and_resumes_one(
    pool: Pool, own_processes: ArqProcesses, tmp_path: Path
) -> None:
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    failed = run(pool.url, "ops_boom", {})
    port = free_port()
    dashboard = own_processes.start("dashboard", "dashboard", "--redis", pool.url, "--port",
                                    str(port), "--allow-control", "--token", TOKEN)
    dashboard.wait_for_output("Uvicorn running", STARTUP_LIMIT)
    base = f"http://127.0.0.1:{port}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(BROWSER_WAIT_MS)
            expect.set_options(timeout=BROWSER_WAIT_MS)
            page.goto(f"{base}?token={TOKEN}#/runs")

            # the runs list shows the failed run, and a run made while it is open
            expect(page.locator(f'#runs a[href="#/run/{failed}"]')).to_be_visible()
            asked = run(pool.url, "ops_ask", {}, thread_id="t-dash-browser")
            expect(page.locator(f'#runs a[href="#/run/{asked}"]')).to_be_visible()

            # the failed run's page: its graph, its error and the worker's traceback
            page.locator(f'#runs a[href="#/run/{failed}"]').click()
            expect(page.locator("#run-traceback")).to_contain_text("in explode")
            expect(page.locator("#run-error-line")).to_contain_text(
                "failed in node 'explode': ValueError: the boom node exploded")
            expect(page.locator('#graph g.node[data-node="explode"]')).to_have_attribute(
                "data-state", "failed")
            expect(page.locator("#mermaid")).to_contain_text("__start__ --> explode")

            # the interrupted run: its question, and the form that answers it
            page.click('a[data-nav="runs"]')  # (in-page links: the URL keeps the token)
            page.locator(f'#runs a[href="#/run/{asked}"]').click()
            expect(page.locator("#resume-form")).to_be_visible()
            expect(page.locator("#interrupt-value")).to_contain_text("name?")
            expect(page.locator('#graph g.node[data-node="ask_name"]')).to_have_attribute(
                "data-state", "interrupted")
            expect(page.locator("#timeline")).to_contain_text("ask_name: interrupted")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            if os.environ.get(SCREENSHOT_ENV):
                shutil.copy(tmp_path / "dashboard.png", os.environ[SCREENSHOT_ENV])
            page.fill("#resume-value", '"Ada"')
            page.click("#resume-button")
            expect(page).not_to_have_url(f"{base}?token={TOKEN}#/run/{asked}")  # the new run
            expect(page.locator("#run-head .status")).to_have_text("done")
            expect(page.locator('#graph g.node[data-node="greet"]')).to_have_attribute(
                "data-state", "done")
            expect(page.locator("#state")).to_contain_text("hello Ada")
            oldest = page.locator("#checkpoint option").last.get_attribute("value")
            page.select_option("#checkpoint", oldest)  # the state at an earlier checkpoint
            expect(page.locator("#state")).not_to_contain_text("hello Ada")
            expect(page.locator("#checkpoint")).to_have_value(oldest or "")
            resumed = page.url.rsplit("/", 1)[1]

            # workers and queues
            page.click('a[data-nav="pool"]')
            expect(page.locator("#workers")).to_contain_text(str(pool.worker.pid))
            expect(page.locator("#queues")).to_contain_text(LONELY_QUEUE)
            expect(page.locator("body")).to_have_attribute("data-error", "")
        except Exception:  # what the page showed, for the report
            print(f"page {page.url}:\n{page.inner_text('body')[:4000]}")
            raise
        finally:
            browser.close()
    assert run_status(pool.url, resumed) == "done"
    assert "token=***" in dashboard.output() and TOKEN not in dashboard.output()  # (logs)
