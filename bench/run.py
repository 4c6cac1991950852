"""Every benchmark in one command: build the graphs, run, print one Markdown report.

    /work/main/.venv/bin/python bench/run.py                  # 1M and 10M candidates (≈ 20 min)
    /work/main/.venv/bin/python bench/run.py --pairs 1M       # 1M only
    /work/main/.venv/bin/python bench/run.py --quick          # tiny sizes, seconds (the smoke test)

Each measurement is a child process (the real CLI, ``app.py``) whose wall time, CPU time (user + system)
and peak RSS come from ``wait4``; the tables show medians of ``--repeat`` runs. Every measurement is made
with this checkout's code and, for the ratio column, with the previous release (``--baseline REV``, checked
out into a temporary git worktree and run with the same interpreter), and where it applies with a
2019-style sequential loop (``bench/legacy2019.py``). The other bench scripts present (render, import,
Dgraph) run last and their output is appended. Nothing here asserts a speed; README.md holds the figures.

This file only reads the command line and wires the parts: ``measure.py`` (running and measuring a child),
``baseline.py`` (the codes compared), ``graphs.py`` (the graphs), ``scenarios.py`` (the benchmarks),
``tables.py`` and ``targets.py`` (the report), ``others.py`` (the other scripts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import baseline, scenarios, tables, targets
from bench.measure import BenchError, child_env, compile_code, machine
from bench.others import run_others

QUICK_PAIRS = 400  # --quick: one small graph serves every dry-run benchmark
QUICK_CREATES = 12  # --quick: Jobs per create benchmark, one injected delay only
SIZE_SUFFIXES = {"k": 1_000, "M": 1_000_000}


def size(text: str) -> int:
    """``1M``, ``250k``, ``100_000`` or ``100000``."""
    text = text.strip().replace("_", "").replace(",", "")
    factor = SIZE_SUFFIXES.get(text[-1:], 1)
    try:
        value = float(text[:-1]) * factor if factor != 1 else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1M, 250k, 100000)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1, not {text!r}")
    return int(value)


def sizes(text: str) -> list[int]:
    return [size(part) for part in text.split(",") if part.strip()]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each: seconds, for the smoke test")
    parser.add_argument("--pairs", type=sizes, help="candidates per graph, comma-separated (default 1M,10M)")
    parser.add_argument("--repeat", type=int, help="runs per measurement; tables show medians (default 3)")
    parser.add_argument("--baseline", default=baseline.DEFAULT_BASELINE, help="previous release's rev ('' skips it)")
    parser.add_argument(
        "--reference-max-pairs",
        type=size,
        default=1_000_000,
        help="run the previous code's full dry run over graphs up to this size (it is slow; default 1M)",
    )
    parser.add_argument(
        "--loop-max-pairs",
        type=size,
        default=100_000,
        help="run the 2019 loop over graphs up to this size besides the reference graph (≈ 270 µs a "
        "candidate; default 100k)",
    )
    parser.add_argument(
        "--json-max-pairs",
        type=size,
        default=1_000_000,
        help="graphs up to this size go through a streamed JSON file and app.py import-graph; larger ones "
        "are written into SQLite directly",
    )
    parser.add_argument(
        "--reference-pairs",
        type=size,
        help="the reference graph: every code's full dry run and the 2019 loop (default 100k)",
    )
    parser.add_argument(
        "--manifest-pairs", type=size, help="graph of the manifests benchmark, with and without them (default 20k)"
    )
    parser.add_argument("--creates", type=size, help="Jobs per create benchmark (1000)")
    parser.add_argument(
        "--only",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=list(scenarios.BENCHMARKS),
        help=f"run only these benchmarks, comma-separated, of {','.join(scenarios.BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--no-others", action="store_true", help="do not run the other bench/*.py scripts")
    parser.add_argument("--work-dir", type=Path, help="where the graphs go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    args.pairs = args.pairs or ([QUICK_PAIRS] if quick else [1_000_000, 10_000_000])
    args.repeat = (1 if quick else 3) if args.repeat is None else args.repeat
    args.reference_pairs = args.reference_pairs or (QUICK_PAIRS if quick else 100_000)
    args.manifest_pairs = args.manifest_pairs or (QUICK_PAIRS if quick else 20_000)
    args.creates = args.creates or (QUICK_CREATES if quick else 1_000)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if unknown := set(args.only) - set(scenarios.BENCHMARKS):
        parser.error(
            f"--only: unknown benchmark(s) {', '.join(sorted(unknown))} (known: {', '.join(scenarios.BENCHMARKS)})"
        )
    return args


def measure_all(args: argparse.Namespace, work: Path) -> scenarios.Bench:
    """This checkout's code and the baseline's (in a worktree removed afterwards) through the selected benchmarks."""
    delay = scenarios.CREATE_DELAY_SECONDS
    plan = scenarios.Plan(
        only=frozenset(args.only),
        pairs=args.pairs,
        reference_pairs=args.reference_pairs,
        manifest_pairs=args.manifest_pairs,
        reference_max_pairs=args.reference_max_pairs,
        loop_max_pairs=args.loop_max_pairs,
        creates=args.creates,
        create_delays=(delay,) if args.quick else (0.0, delay),
    )
    with baseline.baseline_checkout(args.baseline) as previous:
        codes = [baseline.this_checkout(), *([previous] if previous else [])]
        bench = scenarios.Bench(work, codes, args.repeat, args.json_max_pairs)
        (work / "home").mkdir(exist_ok=True)
        for code in codes:  # compiled as the image ships them, outside any measurement
            compile_code(code.root)
        scenarios.measure(bench, plan)
    return bench


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    header = [
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"Command: `{shlex.join([Path(sys.executable).name, 'bench/run.py', *(argv or sys.argv[1:])])}`",
    ]
    try:
        with contextlib.ExitStack() as stack:
            work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="graph-refresh-")))
            work.mkdir(parents=True, exist_ok=True)
            bench = measure_all(args, work)
            others, others_ok = ([], True) if args.no_others else run_others(quick=args.quick, env=child_env(work))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    creates = [row for row in bench.rows if row.benchmark.startswith(scenarios.CREATES)]
    lines = [
        *header,
        "",
        *tables.markdown(tables.PROCESSES, [row for row in bench.rows if row not in creates]),
        "",
        *tables.markdown(tables.CREATES, creates),
        "",
        "Targets (this checkout):",
        "",
        *targets.report(bench.rows),
        "",
        "Graphs built:",
        "",
        *(f"- {line}" for line in bench.builds),
        *others,
        "",
        f"Total time of the command: {time.perf_counter() - started:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0 if others_ok else 1


if __name__ == "__main__":
    sys.exit(main())
