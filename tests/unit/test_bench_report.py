"""bench/report.py: the percentiles and issue 15's targets that docs/benchmarks.md reports."""

from pathlib import Path

import pytest

from bench.report import KEPT, Figure, Target, latencies, percentile, verdict, write_markdown


def test_p99_is_the_nearest_rank_and_with_few_samples_the_slowest() -> None:
    assert percentile([i / 100 for i in range(100, 0, -1)], 99) == 0.99
    assert percentile([0.3, 0.1, 0.2], 99) == 0.3
    assert percentile([0.3, 0.1, 0.2, 0.4], 50) == 0.2


def test_a_latency_is_two_rows_in_milliseconds_with_the_targets_on_their_own_row() -> None:
    p99_target = Target("below", 20)
    p50, p99 = latencies("storage", "SQLite: 待审核", [0.001 * n for n in range(1, 101)],
                         [0.0005] * 100, p99=p99_target)
    assert (p50.case, p50.cadesk, p50.baseline, p50.target) == (
        "SQLite: 待审核 p50", pytest.approx(50.5), pytest.approx(0.5), None)
    assert (p99.case, p99.cadesk, p99.unit, p99.target) == (
        "SQLite: 待审核 p99", pytest.approx(99), "ms", p99_target)


@pytest.mark.parametrize(("figure", "met"), [
    # throughput ≥ 0.6× the echo bot: a rate, higher is better
    (Figure("chat", "msg/s", "msg/s", 60, 100, higher_is_better=True,
            target=Target("share", 0.6)), True),
    (Figure("chat", "msg/s", "msg/s", 59, 100, higher_is_better=True,
            target=Target("share", 0.6)), False),
    # one applicant p50 ≤ 2× the echo bot's
    (Figure("chat", "p50", "ms", 4.0, 2.0, target=Target("times", 2)), True),
    (Figure("chat", "p50", "ms", 4.1, 2.0, target=Target("times", 2)), False),
    # 我的订单 p99 < 20 ms, whatever the baseline
    (Figure("storage", "p99", "ms", 19.9, 0.1, target=Target("below", 20)), True),
    (Figure("storage", "p99", "ms", 20.0, 30.0, target=Target("below", 20)), False),
    # no 系统繁忙 at 1,000 applicants
    (Figure("chat", "busy", "replies", 0, 0, count=True, target=Target("none")), True),
    (Figure("chat", "busy", "replies", 1, 0, count=True, target=Target("none")), False),
])
def test_a_target_is_met_or_not_from_the_figures(figure: Figure, met: bool) -> None:
    assert figure.met is met
    assert verdict(figure)[1] == ("met" if met else "**not met**")


def test_the_table_shows_each_target_and_names_the_ones_missed(tmp_path: Path) -> None:
    figures = [
        Figure("chat", "1 applicant × 1,000: reply p50", "ms", 5.5, 1.1,
               target=Target("times", 2)),
        Figure("chat", "1 applicant × 1,000: reply p99", "ms", 7.0, 2.0),
        Figure("storage", "SQLite: 我的订单 p99", "ms", 8.5, 1.7, target=Target("below", 20)),
    ]
    write_markdown(tmp_path / "b.md", figures, about="here", notes={}, sizes="small",
                   seconds=60, chart="b.png")
    text = (tmp_path / "b.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert {row.count("|") for row in rows} == {9}  # header, rule and rows: 8 cells each
    assert "| 5.50 | 1.10 | ms | 5.00 | ≤ 2× baseline | **not met** |" in text
    assert "| 8.50 | 1.70 | ms | 5.00 | < 20 ms | met |" in text
    assert ("Targets met: 1 of 2; not met: chat: 1 applicant × 1,000: reply p50."
            in text)


def test_a_new_run_keeps_what_people_wrote_below_the_marker(tmp_path: Path) -> None:
    """The before/after comparison and the profiles in docs/benchmarks.md survive the next
    `python -m bench`, which rewrites the figures above them."""
    path = tmp_path / "b.md"
    path.write_text(f"# old figures\n| 1 | 2 |\n\n{KEPT}\n## Before and after\nby hand\n",
                    encoding="utf-8")
    write_markdown(path, [Figure("chat", "p50", "ms", 2.5, 1.5)], about="here", notes={},
                   sizes="small", seconds=60, chart="b.png")
    text = path.read_text(encoding="utf-8")
    assert "# old figures" not in text
    assert "| chat | p50 | 2.50 | 1.50 | ms |" in text
    assert text.endswith(f"{KEPT}\n## Before and after\nby hand\n")
