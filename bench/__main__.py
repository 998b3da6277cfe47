"""``.venv/bin/python -m bench [--quick] [--only chat,storage] [--out DIR]``

Runs every benchmark on this machine, each figure with its baseline measured in the same run,
and writes DIR/benchmarks.md and DIR/benchmarks.png (DIR: docs/, or a temporary directory with
``--quick`` so a harness check never overwrites the committed figures).
"""

import argparse
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from loguru import logger

from bench import chat, cluster, mailbox, scans, storage, unlock
from bench.report import ROOT, Figure, machine, verdict, write_chart, write_markdown

BENCHMARKS = {"chat": chat.run, "mailbox": mailbox.run, "unlock": unlock.run,
              "scans": scans.run, "storage": storage.run, "cluster": cluster.run}
SIZES = {False: "chat 1,000 applicants (1 × 1,000, 100 × 20, 1,000 × 10 messages); mailbox "
                "1,000 mails; unlock 15 rounds; scans 30 rounds; storage 100,000 orders; cluster "
                "1,000 rounds",
         True: "QUICK (harness check, not for publishing): chat 100 applicants (1 × 100, 10 × 4, "
               "100 × 3 messages); mailbox 50 mails; unlock 3 rounds; scans 5 rounds; storage "
               "10,000 orders; cluster 100 rounds"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--out", type=Path, help="where to write benchmarks.md and .png")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    out = args.out or (Path(tempfile.mkdtemp(prefix="cadesk-bench-")) if args.quick
                       else ROOT / "docs")
    # in-process services log like the bot processes do in the benchmark: warnings and worse
    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    # a plain kill (SIGTERM) unwinds like Ctrl+C: the servers each benchmark started are stopped
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    about = machine()
    started = time.perf_counter()
    figures: list[Figure] = []
    notes: dict[str, str] = {}
    failed = False
    for name in sorted(chosen, key=list(BENCHMARKS).index):
        print(f"[bench] {name} …", flush=True)  # noqa: T201 - progress for the person waiting
        began = time.perf_counter()
        try:
            found, note = BENCHMARKS[name](args.quick)
        except Exception:
            traceback.print_exc()
            failed = True
            notes[name] = "**FAILED in this run** — see the harness output."
            continue
        figures += found
        notes[name] = note
        for f in found:
            ratio = "" if f.ratio is None else f" (ratio {f.ratio:.2f})"
            target, met = verdict(f)
            aim = f"; target {target}: {met}" if target else ""
            print(f"  {f.case}: {f.cadesk:.3f} vs {f.baseline:.3f} {f.unit}{ratio}{aim}",  # noqa: T201
                  flush=True)
        print(f"[bench] {name}: {time.perf_counter() - began:.0f} s", flush=True)  # noqa: T201
    out.mkdir(parents=True, exist_ok=True)
    write_chart(out / "benchmarks.png", figures)
    write_markdown(out / "benchmarks.md", figures, about=about, notes=notes,
                   sizes=SIZES[args.quick], seconds=time.perf_counter() - started,
                   chart="benchmarks.png")
    print(f"[bench] wrote {out / 'benchmarks.md'} and {out / 'benchmarks.png'}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
