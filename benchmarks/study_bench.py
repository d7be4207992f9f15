"""Wall time of a sweep (by default the edge-device study) with 1 and with N worker processes: the speedup.

    .venv/bin/python benchmarks/study_bench.py                       # examples/edge_study.toml, jobs 1 and 2
    .venv/bin/python benchmarks/study_bench.py --jobs 2 --rounds 2 --seeds 0   # a quick smaller check

Each measurement runs the whole sweep into a fresh temporary folder (nothing is resumed), then builds the
report from it. The table gives each run's wall time, the report's, the speedup against --jobs 1, and the
load average before and after, because on a shared machine other work changes the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from audits.report import build_report
from audits.sweep import SweepProgress, run_sweep


def _spec(path: Path, rounds: int | None, seeds: list[int] | None) -> dict[str, Any]:
    spec = tomllib.loads(path.read_text())
    base = spec.get("base")
    if isinstance(base, str):
        spec["base"] = tomllib.loads((path.parent / base).read_text())
    if rounds is not None:
        spec.setdefault("base", {}).setdefault("run", {})["rounds"] = rounds
    if seeds is not None:
        spec["seeds"] = seeds
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", nargs="?", default="examples/edge_study.toml", type=Path)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--rounds", type=int, default=None, help="override base run.rounds (smaller check)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    parser.add_argument("--keep", type=Path, default=None, help="keep the last sweep folder here")
    args = parser.parse_args(argv)
    spec = _spec(args.spec, args.rounds, args.seeds)
    rows = []
    for jobs in args.jobs:
        out = Path(tempfile.mkdtemp(prefix=f"study-j{jobs}-"))
        load_before = os.getloadavg()[0]
        start = time.perf_counter()

        def show(p: SweepProgress, jobs: int = jobs, start: float = start) -> None:
            took = time.perf_counter() - start
            print(
                f"  jobs={jobs} {p.finished}/{p.total} {took:7.1f}s {p.point.status:7s} {p.point.name}",
                flush=True,
            )

        result = run_sweep(spec, out / "sweep", jobs=jobs, progress=show)
        sweep_s = time.perf_counter() - start
        t = time.perf_counter()
        build_report(out / "sweep")
        report_s = time.perf_counter() - t
        rows.append(
            (jobs, len(result.points), len(result.failed), sweep_s, report_s, load_before, os.getloadavg()[0])
        )
        if args.keep is not None:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.move(str(out / "sweep"), args.keep)
        shutil.rmtree(out, ignore_errors=True)
    base = rows[0][3]
    print(f"\n{args.spec} on {os.cpu_count()} cores (load average = other work on the machine)")
    print(
        "| jobs | points | failed | sweep wall s | report s | speedup vs first | load before | load after |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for jobs, n, failed, sweep_s, report_s, l0, l1 in rows:
        print(
            f"| {jobs} | {n} | {failed} | {sweep_s:.0f} | {report_s:.1f} | {base / sweep_s:.2f} "
            f"| {l0:.1f} | {l1:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
