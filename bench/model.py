"""What a scenario produces: rows of measurements (median of repetitions, ratio to the reference),
whether its target is met, and diagnostics (Redis commands, CPU, bytes) for the report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.env import Env

CLUSTER = "arqgraph-cluster"
EMBEDDED = "arqgraph-embedded"
LANGGRAPH = "langgraph (in-process)"
ARQ = "plain arq"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[rank])


@dataclass
class Row:
    """One backend's measurement in one scenario: `values` holds one number per repetition."""

    backend: str
    metric: str
    unit: str
    values: list[float]
    higher_is_better: bool = False
    detail: str = ""  # a secondary number, e.g. "p99 2.4 ms"
    ratio: float | None = None  # filled in by `Result.finish`

    @property
    def value(self) -> float:
        return median(self.values)


@dataclass
class Result:
    """A scenario's outcome. `reference` names the row the ratios are relative to."""

    scenario: str
    rows: list[Row] = field(default_factory=list)
    reference: str | None = None
    met: bool | None = None
    verdict: str = ""  # how the target compares, in words and numbers
    diagnostics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"    {row.backend}: {row.metric} {fmt(row.value, row.unit)} {row.detail}".rstrip(),
              flush=True)
        return row

    def row(self, backend: str, metric: str | None = None) -> Row | None:
        for row in self.rows:
            if row.backend == backend and (metric is None or row.metric == metric):
                return row
        return None

    def finish(self) -> Result:
        """Fill in each row's ratio to the reference row of the same metric: a value above 1
        means better than the reference when higher is better, slower otherwise."""
        for row in self.rows:
            ref = next((r for r in self.rows if r.backend == self.reference
                        and r.metric == row.metric), None)
            if ref is not None and ref.value and ref.value == ref.value:
                row.ratio = row.value / ref.value
        return self


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    target: str
    run: Callable[[Env], Awaitable[Result]]
    needs_cluster: bool = True


async def repeat(times: int, measure: Callable[[], Awaitable[float]]) -> list[float]:
    return [await measure() for _ in range(times)]


def fmt(value: float, unit: str = "") -> str:
    """A number for a table: 3 significant digits, thousands separated."""
    if value != value:
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()
