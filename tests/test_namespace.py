"""The distribution installs one import package, `arqgraph`, and nothing a user's own modules
could collide with.

The repository keeps the design card's folders (`shared/`, `orchestrator/`, `workers/`), and
pyproject's package-dir installs them as `arqgraph`, `arqgraph.orchestrator` and
`arqgraph.workers`. The test below builds the wheel, installs it into a fresh virtual
environment and, from a folder holding the user's own `shared/` package, `workers.py` and
`orchestrator.py`, runs a graph on the embedded default and on a real cluster (orchestrator and
worker processes started from that folder, on a real redis-server). The user's modules stay
theirs: the graph's nodes import them, on the workers too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, RedisServer, wait_for

USER_MODULES = ("orchestrator", "shared", "workers")  # the names arqgraph once installed

USER_GRAPH = '''
"""A user's graph module, beside their own `shared`, `workers` and `orchestrator` modules."""
import operator
from typing import Annotated, TypedDict

{imports}
from arqgraph.graph import END, START, StateGraph


class State(TypedDict):
    name: str
    seen: Annotated[list[str], operator.add]


def first(state: State) -> dict:
    return {"seen": [shared.WHO, workers.WHO]}


async def second(state: State) -> dict:
    return {"seen": [orchestrator.WHO + " " + state["name"]]}


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
builder.add_edge("second", END)
graph = builder.compile(name="usergraph")
'''

EXPECTED = {"name": "Ada", "seen": ["the user's shared", "the user's workers",
                                    "the user's orchestrator Ada"]}

EMBEDDED = '''
import json, sys
import arqgraph, orchestrator, shared, workers
import usergraph
print(json.dumps({
    "arqgraph": arqgraph.__file__, "shared": shared.__file__, "workers": workers.__file__,
    "orchestrator": orchestrator.__file__,
    "result": usergraph.graph.invoke({"name": "Ada", "seen": []}),
}))
'''

PRODUCER = '''
import json, sys
from arqgraph.client import SyncClient
with SyncClient(sys.argv[1]) as client:
    print(json.dumps(client.submit("usergraph", {"name": "Ada", "seen": []}).result()))
'''


def run(argv: list[str], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=clean_env())
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env() -> dict[str, str]:
    """No PYTHONPATH or ARQGRAPH_* of the test run: the fresh venv alone decides what imports."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("ARQGRAPH_")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO_ROOT)], cwd=out)
    (built,) = out.glob("arqgraph-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed. Its dependencies are the test
    run's own, seen through a path file rather than downloaded and built again; `pip check`
    proves they satisfy what the wheel asks. The test run's editable arqgraph stays out: a path
    file adds folders but runs none of their own path files, and the editable hook is one."""
    import site

    home = tmp_path_factory.mktemp("venv") / "env"
    run([sys.executable, "-m", "venv", "--without-pip", str(home)], cwd=home.parent)
    python = str(home / "bin" / "python")
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
         "--disable-pip-version-check", str(wheel)], cwd=home.parent, timeout=540)
    own = run([python, "-c", "import site; print(site.getsitepackages()[0])"], cwd=home)
    (Path(own.strip()) / "test-run-dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "check"], cwd=home.parent)
    return home


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """The user's folder: their own `shared/`, `workers.py`, `orchestrator.py` and graph."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "__init__.py").write_text('WHO = "the user\'s shared"\n')
    (tmp_path / "workers.py").write_text('WHO = "the user\'s workers"\n')
    (tmp_path / "orchestrator.py").write_text('WHO = "the user\'s orchestrator"\n')
    imports = "\n".join(f"import {name}" for name in USER_MODULES)
    (tmp_path / "usergraph.py").write_text(
        textwrap.dedent(USER_GRAPH).replace("{imports}", imports))
    yield tmp_path


def test_the_wheel_installs_one_import_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"arqgraph"}
    sources = {str(p.relative_to(REPO_ROOT)) for folder in ("shared", "orchestrator", "workers")
               for p in (REPO_ROOT / folder).rglob("*.py")}
    installed = {"shared/" + n.removeprefix("arqgraph/") for n in names if n.endswith(".py")}
    installed = {n.replace("shared/orchestrator/", "orchestrator/")
                  .replace("shared/workers/", "workers/") for n in installed}
    assert sources - installed == set(), "modules of the repo missing from the wheel"
    assert "arqgraph/py.typed" in names  # its types ship with it (PEP 561)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "arqgraph = arqgraph.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_embedded_run_from_a_folder_with_the_users_own_modules(venv: Path, project: Path) -> None:
    (project / "embedded.py").write_text(EMBEDDED)
    seen = json.loads(run([str(venv / "bin" / "python"), "embedded.py"], cwd=project))
    assert seen["result"] == EXPECTED
    assert Path(seen["arqgraph"]).is_relative_to(venv), seen["arqgraph"]
    for name in ("shared", "workers", "orchestrator"):
        assert Path(seen[name]).is_relative_to(project), (name, seen[name])


def test_cluster_run_from_a_folder_with_the_users_own_modules(
    venv: Path, project: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    logs = tmp_path_factory.mktemp("namespace-logs")
    url = redis_server.url.rsplit("/", 1)[0] + "/7"  # a database of this test's own
    arqgraph = str(venv / "bin" / "arqgraph")
    procs = []
    try:
        for role in ("orchestrator", "worker"):
            out = open(logs / f"{role}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append((role, out, subprocess.Popen(
                [arqgraph, role, "usergraph:graph", "--redis", url], cwd=project, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env())))

        def log(role: str) -> str:
            return (logs / f"{role}.log").read_text(errors="replace")

        def registered() -> bool:
            for role, _, proc in procs:
                assert proc.poll() is None, f"{role} exited:\n{log(role)}"
            return "serving graphs usergraph" in log("orchestrator")

        wait_for(registered, 60, "the orchestrator to register usergraph")
        (project / "producer.py").write_text(PRODUCER)
        result = json.loads(run([str(venv / "bin" / "python"), "producer.py", url], cwd=project,
                                timeout=120))
        assert result == EXPECTED
    finally:
        for _, out, proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
