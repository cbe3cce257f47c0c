"""The benchmark suite's own machinery: its scenario list, its arguments, its report. No timing is
asserted here, and nothing long runs: one toy-sized graph on the embedded path and LangGraph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cli, graphs, profiling
from bench.env import FULL, QUICK, Env
from bench.model import CLUSTER, EMBEDDED, LANGGRAPH, Result, Row, fmt, median, percentile
from bench.report import Machine, dump, load, markdown, text_table

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_scenarios_cover_the_issue_and_have_unique_names() -> None:
    names = [s.name for s in cli.SCENARIOS]
    assert len(names) == len(set(names))
    assert set(names) == {"idle", "chain", "fanout", "io", "screening", "runs", "cpu", "blob",
                          "inflight", "serve", "metrics"}
    for scenario in cli.SCENARIOS:
        assert scenario.title and scenario.target and callable(scenario.run)


def test_arguments() -> None:
    args = cli.build_parser().parse_args(
        ["--quick", "--only", "chain", "--only", "idle", "--write", "docs/benchmarks.md"])
    assert args.quick and args.only == ["chain", "idle"]
    assert args.write == Path("docs/benchmarks.md")
    assert [s.name for s in cli.selected(args.only)] == ["idle", "chain"]  # the suite's order
    assert len(cli.selected([])) == len(cli.SCENARIOS)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--only", "nonsense"])


def test_quick_is_smaller_than_full() -> None:
    assert QUICK.reps <= FULL.reps
    for size in ("fanout", "io_tasks", "runs", "cpu_tasks", "blob_tasks", "inflight_runs"):
        assert getattr(QUICK, size) <= getattr(FULL, size)


def test_statistics_and_numbers() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([], 50) != percentile([], 50)  # NaN
    assert fmt(1234.5, "tasks/s") == "1,234 tasks/s" and fmt(0.25, "ms") == "0.250 ms"
    assert graphs.superstep_gaps([1.0, 1.5, 3.0]) == [0.5, 1.5]


def _results() -> list[Result]:
    chain = Result("chain", reference=LANGGRAPH, met=False, verdict="p50 4 ms")
    chain.rows += [Row(CLUSTER, "p50 per superstep", "ms", [4.0, 5.0, 3.0]),
                   Row(LANGGRAPH, "p50 per superstep", "ms", [0.2, 0.2, 0.2])]
    chain.diagnostics["per_superstep"] = {
        "units": 200, "commands": {"EVALSHA": 6.0, "HGET": 10.0}, "commands_total": 16.0,
        "net_bytes": 15000.0, "cpu_ms": {"orchestrator": 1.5, "workers": 2.0}, "wall_ms": 4.5}
    runs = Result("runs", reference=LANGGRAPH, met=True, verdict="fast enough")
    runs.rows += [Row(CLUSTER, "runs/s", "runs/s", [900.0], higher_is_better=True),
                  Row(LANGGRAPH, "runs/s", "runs/s", [600.0], higher_is_better=True)]
    runs.notes.append("a note")
    return [chain.finish(), runs.finish()]


def _machine() -> Machine:
    return Machine("Some CPU", 2, 24.0, "Linux", "3.11", "redis-server 7.0", {"arq": "0.28"},
                   "1.00", "2026-01-01 00:00 UTC")


def test_ratios_and_the_table() -> None:
    chain, runs = _results()
    assert chain.rows[0].ratio == pytest.approx(20.0)  # 4 ms against 0.2 ms
    assert runs.rows[0].ratio == pytest.approx(1.5)
    table = text_table([chain, runs])
    assert "ref." in table and "20.00x" in table and "chain: NOT MET" in table


def test_markdown_document(tmp_path: Path) -> None:
    results = _results()
    profile = [f"profile line at {REPO_ROOT}/bench/profiling.py:1"]
    text = markdown(results, cli.SCENARIOS, _machine(), "python -m bench", profile, "noisy")
    assert text.startswith("# Benchmarks")
    assert "## Machine" in text and "Some CPU, 2 cores" in text and "redis-server 7.0" in text
    assert "## Targets" in text and "| no |" in text and "| yes |" in text
    assert "## All measurements" in text and "| ref. |" in text
    assert "## Where the time goes" in text and "| EVALSHA | 6.00 |" in text
    assert "> noisy" in text and "- runs: a note" in text
    assert str(REPO_ROOT) not in text  # no path of this machine
    # the JSON dump renders the same document again, through the command line
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(dump(results, _machine(), "python -m bench", profile, "noisy")))
    again, *_ = load(json.loads(saved.read_text()))
    assert [r.rows[0].value for r in again] == [r.rows[0].value for r in results]
    out = tmp_path / "benchmarks.md"
    assert cli.main(["--render", str(saved), "--write", str(out)]) == 0
    assert out.read_text() == text


def test_py_spy_stacks_are_summarized() -> None:
    raw = "\n".join([
        "process;main (shared/cli.py:10);advance (orchestrator/service.py:5);"
        "execute_command (redis/asyncio/client.py:1) 30",
        "process;main (shared/cli.py:10);advance (orchestrator/service.py:5);"
        "unpackb (shared/core/codec.py:140) 10",
        "process;main (shared/cli.py:10);_run_once (asyncio/base_events.py:1);"
        "select (selectors.py:468) 60",
    ])
    summary = profiling.summarize(profiling.parse_raw(raw))
    assert summary["idle"] == 60 and summary["samples"] == 40
    assert summary["categories"]["redis-py (commands, sockets, replies)"] == pytest.approx(0.75)
    assert summary["categories"]["msgpack encode/decode"] == pytest.approx(0.25)
    assert summary["functions"]["advance (orchestrator/service.py)"] == pytest.approx(1.0)


def test_a_profile_too_short_to_break_down_says_so() -> None:
    busy = {"samples": 40, "cpu_s": 0.2, "categories": {"redis-py": 0.75, "msgpack": 0.25},
            "functions": {"advance (orchestrator/service.py)": 1.0}}
    prof = {"seconds": 1.0, "orchestrator": {**busy, "samples": 1, "categories": {}},
            "worker 1": busy}
    lines = profiling._profile_md("Chain", prof, units=200, unit="superstep")
    assert "- orchestrator: 1 busy sample = 0.20 s = 1.00 ms per superstep: too few" in lines[2]
    assert "Busy time by category: redis-py 75%, msgpack 25%" in lines[3]


async def test_a_toy_fanout_on_the_embedded_path_and_langgraph() -> None:
    env = Env(QUICK, quick=True)
    _, out = await env.on_embedded("bench_fanout", graphs.fanout_input(5))
    _, ref = await env.on_langgraph("bench_fanout", graphs.fanout_input(5))
    assert out["total"] == ref["total"] == 5 and out["done"] and ref["done"]
    _, three = await env.on_embedded("bench_three", {"x": 1})
    assert three == {"x": 4}
    assert EMBEDDED != CLUSTER


def test_a_peer_not_installed_is_skipped_with_a_line(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from bench import peers

    missing = peers.Peer("nopeer", "no_such_package_for_the_bench", True, lambda pool: None)
    here = peers.Peer("json", "json", False, lambda pool: None)
    monkeypatch.setattr(peers, "PEERS", (missing, here))
    assert peers.installed() == [here]
    assert "nopeer: skipped, its package 'no_such_package_for_the_bench' is not installed" in (
        capsys.readouterr().out)
    assert peers.main(["runs", "nopeer", "1", "x"]) == 2  # (a usage line, not a crash)
