"""Run every benchmark, print its table and write ``bench-results/latest.json``.

Usage (from the repository root; ``make bench`` does this)::

    python -m benchmarks.run [--rounds N] [--stream-rounds N] [--bars N] [--out PATH]

Figures are throughput ratios against a baseline timed in the same process; nothing here
fails on a number.  The exit code is 0 unless a benchmark raises.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("benchmarks.bench_strategy", "benchmarks.bench_stacking", "benchmarks.bench_latency",
           "benchmarks.bench_robustness", "benchmarks.bench_pool", "benchmarks.bench_deep",
           "benchmarks.bench_store", "benchmarks.bench_panel",
           "benchmarks.bench_portfolio", "benchmarks.bench_dashboard")
PACKAGES = ("backtrader", "numpy", "pandas", "numba", "vectorbt", "ray")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def machine() -> dict:
    """What the numbers were measured on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "packages": versions, "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain"))}


def format_table(result: dict) -> str:
    """A plain-text table of one benchmark's cases and ratios."""
    lines = [f"== {result['name']}: {result['title']} ({result['n_bars']} bars, "
             f"{result['rounds']} rounds; stream {result['stream_rounds']})",
             f"{'case':<26} {'median s':>9} {'min s':>7} {'spread':>7} {'bars/s':>8} "
             f"{'fills':>6}"]
    for c in result["cases"]:
        lines.append(f"{c['name']:<26} {c['median_wall_s']:>9.3f} {c['min_wall_s']:>7.3f} "
                     f"{c['spread']:>7.0%} {c['bars_per_s']:>8.0f} {c['fills']:>6}")
    lines.append(f"{'throughput ratio':<40} {'medians':>8} {'paired':>7} {'best':>6}  goal")
    for r in result["ratios"]:
        goal = f">= {r['goal']}" if r["goal"] is not None else ""
        lines.append(f"{r['name']:<40} {r['throughput_ratio']:>8.2f} {r['paired_ratio']:>7.2f} "
                     f"{r['best_ratio']:>6.2f}  {goal}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case")
    parser.add_argument("--stream-rounds", type=int, default=None,
                        help="timed rounds of the runonce=False cases (0 skips them)")
    parser.add_argument("--bars", type=int, default=None, help="bars per backtest")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "latest.json")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("rounds", args.rounds), ("n_bars", args.bars),
                                   ("stream_rounds", args.stream_rounds)) if v is not None}

    started = time.perf_counter()
    results = []
    for name in MODULES:
        result = importlib.import_module(name).run(**overrides)
        results.append(result)
        print(result.get("text") or format_table(result), flush=True)
    payload = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
               "elapsed_s": round(time.perf_counter() - started, 1),
               "machine": machine(), "benchmarks": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"elapsed {payload['elapsed_s']} s")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
