"""The README's cluster quick start, pasted as one block, works: the producer started right
after the orchestrator waits for it to register the graph instead of failing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cluster import free_port
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def quick_start_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Cluster quick start", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under 'Cluster quick start'"
    return match.group(1)


def test_the_cluster_quick_start_works_pasted_as_one_block(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server not installed")
    port = free_port()
    # The adaptations: a free port for 6379, and no `pip install .` (this environment has the
    # package installed already, editable).
    lines = [line for line in quick_start_block().splitlines()
             if not line.startswith("pip install")]
    block = "\n".join(lines).replace("6379", str(port)) + "\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARQGRAPH_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # `examples.screening` from the repository, run elsewhere
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "wb") as out_file, open(stderr, "wb") as err_file:
        shell = subprocess.Popen(["bash", "-c", block], cwd=tmp_path, env=env, stdout=out_file,
                                 stderr=err_file, start_new_session=True)
    try:  # (the block's background processes keep running: wait for the shell alone)
        shell.wait(timeout=90)
        out, err = stdout.read_text(), stderr.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)  # its background processes: redis, the pool
    assert shell.returncode == 0, err[-3000:]
    printed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert printed[-1]["name"] == "Ada" and printed[-1]["decision"] == "HIRED", out
    assert [next(iter(p["updates"])) for p in printed[:-1]][0] == "parse", out

    def stopped() -> bool:
        return subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
                              capture_output=True).returncode != 0

    wait_for(stopped, 30, "the block's redis-server to stop")


def test_every_relative_link_of_the_docs_names_a_file() -> None:
    """The README's and docs/'s links to files of the repository (docs/porting.md, a module)
    resolve, so a page moved or renamed does not leave a dead link behind."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    dead = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#", 1)[0]
            if not path or re.match(r"[a-z]+:", path):  # an anchor, or http(s):, mailto:
                continue
            if not (page.parent / path).exists():
                dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert dead == []
