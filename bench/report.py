"""Figures, the table in docs/benchmarks.md and the chart beside it."""

import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
CJK_FONTS = ("Noto Sans CJK SC", "WenQuanYi Zen Hei", "Droid Sans Fallback")


@dataclass(frozen=True)
class Target:
    """A goal a figure must reach, as issue 15 states it: against the baseline measured in the
    same run (``times``: cadesk's cost at most ``bound`` × the baseline's; ``share``: cadesk's
    rate at least ``bound`` × the baseline's) or on cadesk's own figure (``below``: under
    ``bound``; ``none``: zero)."""

    kind: Literal["times", "share", "below", "none"]
    bound: float = 0

    def met(self, cadesk: float, baseline: float) -> bool:
        match self.kind:
            case "times":
                return cadesk <= self.bound * baseline
            case "share":
                return cadesk >= self.bound * baseline
            case "below":
                return cadesk < self.bound
            case "none":
                return cadesk == 0

    def describe(self, unit: str) -> str:
        match self.kind:
            case "times":
                return f"≤ {self.bound:g}× baseline"
            case "share":
                return f"≥ {self.bound:g}× baseline"
            case "below":
                return f"< {self.bound:g} {unit}"
            case "none":
                return "none"


@dataclass
class Figure:
    """One measured quantity for cadesk and for its baseline, measured in the same run."""

    benchmark: str  # chat, mailbox, unlock, scans, storage
    case: str  # what was measured, e.g. "100 applicants: p99 reply"
    unit: str  # "msg/s", "ms", "s"
    cadesk: float
    baseline: float
    higher_is_better: bool = False
    count: bool = False  # a number of events (errors…): compared as is, no ratio
    target: Target | None = None  # issue 15's goal for this figure, where it names one

    @property
    def met(self) -> bool | None:
        """Whether the figure reaches its target (None: it has none)."""
        return None if self.target is None else self.target.met(self.cadesk, self.baseline)

    @property
    def ratio(self) -> float | None:
        """How many times the baseline's cost cadesk pays (1.0: as fast as the baseline)."""
        if self.count:
            return None
        if self.higher_is_better:
            return self.baseline / self.cadesk if self.cadesk else float("inf")
        return self.cadesk / self.baseline if self.baseline else float("inf")


class BenchmarkFailed(RuntimeError):
    """The system did not do what was measured: the figure would be meaningless."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise BenchmarkFailed(what)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), p in 0..100."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(len(ordered), rank) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def latencies(benchmark: str, case: str, cadesk: list[float], baseline: list[float], *,
              p50: Target | None = None, p99: Target | None = None) -> list[Figure]:
    """Two rows for one latency, in ms from samples in seconds: the median (p50) and the
    99th percentile (nearest rank; with under 100 samples, the slowest one)."""
    return [Figure(benchmark, f"{case} p50", "ms", median(cadesk) * 1000,
                   median(baseline) * 1000, target=p50),
            Figure(benchmark, f"{case} p99", "ms", percentile(cadesk, 99) * 1000,
                   percentile(baseline, 99) * 1000, target=p99)]


def verdict(figure: Figure) -> tuple[str, str]:
    """The table's last two cells: the target, and whether this run reached it."""
    if figure.target is None:
        return "", ""
    return figure.target.describe(figure.unit), "met" if figure.met else "**not met**"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True, check=False).stdout.splitlines()
    if changed:
        commit += f" plus {len(changed)} uncommitted file(s) in the shared checkout"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}; commit {commit or '?'}; "
            f"load average at start {load}")


KEPT = "<!-- kept across runs: written by people, not by python -m bench -->"


def write_markdown(path: Path, figures: list[Figure], *, about: str, notes: dict[str, str],
                   sizes: str, seconds: float, chart: str) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `.venv/bin/python -m bench` (see [bench/](../bench/)); every cadesk figure "
        "has its baseline measured in the same run, on the same machine, right beside it.",
        "",
        f"- Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min in all; "
        f"sizes: {sizes}.",
        f"- Machine: {about}.",
        "- **ratio** = how many times the baseline's cost cadesk pays: cadesk ÷ baseline for "
        "times, baseline ÷ cadesk for rates. 1.0 is as fast as the baseline; 3.0 is three "
        "times slower.",
        "- **target**: issue 15's goal for the figure where it names one (\"baseline\" is the "
        "baseline of that row), and whether this run met it. The issue states them for the "
        "full sizes: a `--quick` run checks them against its smaller ones only to exercise "
        "the harness.",
        "",
        "| benchmark | case | cadesk | baseline | unit | ratio | target | met |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    for f in figures:
        ratio = "—" if f.ratio is None else f"{f.ratio:.2f}"
        target, met = verdict(f)
        lines.append(f"| {f.benchmark} | {f.case} | {_number(f.cadesk)} | {_number(f.baseline)} "
                     f"| {f.unit} | {ratio} | {target} | {met} |")
    aimed = [f for f in figures if f.target is not None]
    missed = [f"{f.benchmark}: {f.case}" for f in aimed if not f.met]
    lines += ["", f"Targets met: {len(aimed) - len(missed)} of {len(aimed)}"
              + (f"; not met: {'; '.join(missed)}." if missed else "."),
              "", f"![cadesk against its baselines]({chart})", "", "## What each one measures",
              ""]
    for name, text in notes.items():
        lines += [f"**{name}.** {text}", ""]
    text = "\n".join(lines).rstrip() + "\n"
    # what people wrote below the marker (comparisons across runs, profiles) stays
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if KEPT in old:
        text += "\n" + old[old.index(KEPT):]
    path.write_text(text, encoding="utf-8")


def write_chart(path: Path, figures: list[Figure]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    # labels hold Chinese command names: fall back to a CJK font where DejaVu has no glyph
    installed = {font.name for font in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = ["DejaVu Sans", *(name for name in CJK_FONTS
                                                    if name in installed)]

    figures = [f for f in figures if f.ratio is not None]
    labels = [f"{f.benchmark}: {f.case}" for f in figures]
    ratios = [f.ratio for f in figures]
    colours = {"chat": "#4c72b0", "mailbox": "#dd8452", "unlock": "#55a868", "scans": "#c44e52",
               "storage": "#8172b3"}
    fig, ax = plt.subplots(figsize=(10, 0.38 * len(figures) + 1.6))
    y = list(range(len(figures)))[::-1]
    ax.barh(y, ratios, color=[colours.get(f.benchmark, "grey") for f in figures])
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(ratios, default=1) * 4)  # room for the labels after the bars
    ax.axvline(1, color="black", linewidth=0.8)
    for yy, r in zip(y, ratios, strict=True):
        ax.text(r, yy, f" {r:.2f}×", va="center", fontsize=7)
    ax.set_xlabel("cost relative to the baseline measured in the same run (log scale; 1 = same)")
    ax.set_title("cadesk against its baselines")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
