"""The results as one table on the terminal, and as docs/benchmarks.md (regenerated, never
hand-edited: the prose it includes lives in bench/analysis.md)."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.model import Result, Row, Scenario, fmt

ANALYSIS = Path(__file__).with_name("analysis.md")
HEADER = ("scenario", "backend", "metric", "median", "ratio to ref.", "detail")


@dataclass
class Machine:
    cpu: str
    cores: int
    memory_gb: float
    system: str
    python: str
    redis: str
    packages: dict[str, str] = field(default_factory=dict)
    load: str = ""
    date: str = ""

    def lines(self) -> list[str]:
        pkgs = ", ".join(f"{k} {v}" for k, v in self.packages.items())
        return [f"- date: {self.date}", f"- CPU: {self.cpu}, {self.cores} cores, "
                f"{self.memory_gb:.0f} GB RAM", f"- system: {self.system}",
                f"- Python {self.python}; {self.redis}", f"- packages: {pkgs}",
                f"- load average when the run started: {self.load}"]


def describe_machine() -> Machine:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    redis = "redis-server not found"
    binary = shutil.which("redis-server")
    if binary:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        redis = "redis-server " + next((w.split("=")[1] for w in out.split() if w.startswith("v=")),
                                       out.strip())
    packages = {}
    for name in ("arq", "redis", "msgpack", "langgraph", "pydantic", "celery", "dramatiq",
                 "distributed", "ray"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "missing"
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return Machine(cpu, os.cpu_count() or 0, pages / 1e9, f"{platform.system()} {platform.release()}",
                   platform.python_version(), redis, packages, load,
                   datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for res in results:
        for i, row in enumerate(res.rows):
            ratio = "n/a"
            if row.ratio is not None:
                ratio = "ref." if row.backend == res.reference else f"{row.ratio:.2f}x"
            rows.append((res.scenario if i == 0 else "", row.backend, row.metric,
                         fmt(row.value, row.unit), ratio, row.detail))
    return rows


def text_table(results: Sequence[Result]) -> str:
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdicts = [f"{r.scenario}: {'MET' if r.met else 'NOT MET' if r.met is False else '?'} - "
                f"{r.verdict}" for r in results]
    return "\n".join([*lines, "", *verdicts])


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_md_row(header), _md_row(["---"] * len(header)), *[_md_row(r) for r in rows]]


def diagnostics_md(results: Sequence[Result]) -> list[str]:
    """Per superstep (chain) and per task (fan-out): Redis commands, bytes, CPU of each process."""
    out: list[str] = []
    for res in results:
        for key in ("per_superstep", "per_task"):
            d = res.diagnostics.get(key)
            if not d:
                continue
            unit = "superstep" if key == "per_superstep" else "task"
            out += ["", f"**{res.scenario}, per {unit}** (over {d['units']:,} {unit}s of one "
                    "cluster run; counted by Redis and /proc):", ""]
            cpu = ", ".join(f"{k} {v:.2f} ms" for k, v in d["cpu_ms"].items())
            out.append(f"- wall {d['wall_ms']:.2f} ms; CPU {cpu}")
            out.append(f"- {d['commands_total']:.1f} Redis commands, {d['net_bytes']:,.0f} bytes "
                       "in + out of Redis")
            top = [(k, f"{v:.2f}") for k, v in list(d["commands"].items())[:14]]
            out += ["", *md_table(("command", f"calls per {unit}"), top)]
    idle: dict[str, float] | None = next(
        (r.diagnostics["idle_commands"] for r in results if "idle_commands" in r.diagnostics), None)
    if idle:
        busiest = sorted(idle.items(), key=lambda kv: -kv[1])
        out += ["", "**idle cluster, commands/s by command:** "
                + ", ".join(f"{k} {v:.2f}" for k, v in busiest)]
    return out


def markdown(
    results: Sequence[Result], scenarios: Sequence[Scenario], machine: Machine, command: str,
    profile: Sequence[str] = (), noise: str = "",
) -> str:
    by_name = {s.name: s for s in scenarios}
    lines = ["# Benchmarks", "",
             f"Generated by `{command}` (bench/, see README \"Benchmarks\"); do not edit by hand: "
             "the prose below comes from `bench/analysis.md`.", "",
             "Setup: one redis-server (AOF, `appendfsync everysec`) with 1 orchestrator and 2 "
             "worker processes on the same machine (`--concurrency 1000`, `--poll-delay 0.5`: "
             "workers wake on the wake-up list); the embedded default (fakeredis, in-process); "
             "the same graph on in-process LangGraph; plain arq workers (arq's Worker, msgpack, "
             "poll 2 ms) doing the same work as jobs. Each number is the median of the "
             "repetitions; ratios are to the row marked `ref.`.", "", "## Machine", "",
             *machine.lines()]
    if noise:
        lines += ["", f"> {noise}"]
    lines += ["", "## Targets", ""]
    target_rows = [(by_name[r.scenario].title if r.scenario in by_name else r.scenario,
                    by_name[r.scenario].target if r.scenario in by_name else "",
                    "yes" if r.met else "no" if r.met is False else "?", r.verdict)
                   for r in results]
    lines += md_table(("scenario", "target", "met", "measured"), target_rows)
    lines += ["", "## All measurements", ""]
    lines += md_table(HEADER, table_rows(results))
    notes = [f"- {r.scenario}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", *notes]
    lines += ["", "## Where the time goes", "", "### Counted during the run", *diagnostics_md(results)]
    if profile:
        lines += ["", "### Profiles", "", *profile]
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text().strip()]
    return sanitize("\n".join(lines) + "\n")


def sanitize(text: str) -> str:
    """No path of this machine in the document: paths relative to the repository."""
    root = str(Path(__file__).resolve().parent.parent)
    return text.replace(root + "/", "").replace(root, ".")


def dump(results: Sequence[Result], machine: Machine, command: str, profile: Sequence[str],
         noise: str) -> dict[str, Any]:
    """Everything the document is made of, as JSON (`python -m bench --render` rebuilds it)."""
    return {"command": command, "machine": asdict(machine), "profile": list(profile),
            "noise": noise, "results": [asdict(r) for r in results]}


def load(data: dict[str, Any]) -> tuple[list[Result], Machine, str, list[str], str]:
    results = []
    for r in data["results"]:
        rows = [Row(**row) for row in r.pop("rows")]
        results.append(Result(**r, rows=rows))
    return (results, Machine(**data["machine"]), data["command"], list(data["profile"]),
            data["noise"])
