"""``python3 -m bench [ami|agi|ws|lag ...] [--quick]``: ours beside the peers, one run."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

from bench.common import Goal, Options, Report

SUITES = ("ami", "agi", "ws", "lag", "crm", "ivr")  # modules bench.<name>, each with run(report, options)

GOALS = [
    Goal("ami_events_per_s", "cti", "panoramisk", min_ratio=3.0),
    Goal("ami_events_per_s", "cti_typed", "panoramisk", min_ratio=3.0),
    Goal("agi_sessions_per_s_c50", "cti", "bare", min_ratio=0.9),
    Goal("agi_sessions_per_s_c200", "cti", "bare", min_ratio=0.9),
    Goal("agi_empty_conn_loop_lag_ms_max", "cti", "", max_value=100.0),
    Goal("ivr_node_overhead_p99_ms", "cti", "", max_value=1.0),
    Goal("ivr_sessions_lost", "cti", "", max_value=1.0),
]


def load_note(when: str) -> str:
    """Other work on the machine skews every figure: say how busy it was."""
    one, five, _ = os.getloadavg()
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help="any of: " + ", ".join(SUITES) + " (default: all)")
    p.add_argument("--quick", action="store_true", help="a ~20 s smoke run with small counts")
    p.add_argument("--profile", action="store_true",
                   help="also run our AMI client and FastAGI server under cProfile and print where their time goes")
    args = p.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        p.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    chosen = args.suites or list(SUITES)
    opts = Options(quick=args.quick, profile=args.profile)

    report = Report()
    report.note(f"python {platform.python_version()} on {platform.system()} {platform.release()}, "
                f"{os.cpu_count()} cpus{', quick' if args.quick else ''}")
    report.note(load_note("before"))
    started = time.perf_counter()
    for name in chosen:
        importlib.import_module(f"bench.{name}").run(report, opts)
    print()
    for line in report.ratio_lines():
        print(line)
    goals = report.goal_lines(GOALS)
    if goals:
        print()
        for line in goals:
            print(line)
    print(f"\n# total {time.perf_counter() - started:.1f} s; {load_note('after')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
