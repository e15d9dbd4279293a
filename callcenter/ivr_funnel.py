"""``cti ivr funnel``: the IVR funnel from the call log: how many callers reached each node, left at
each node and took each option, for the calls that arrived in a date range.

The store is read a page of calls at a time (``Store.iter_ivr_steps``), so a large log is never loaded
whole; progress goes to stderr every 100,000 calls. ``--json`` prints one object; otherwise a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

from callcenter.cli_customers import Loader, db_url, db_via
from callcenter.startup import EXIT_OK, open_store
from crm_core.ivr_funnel import IvrFunnel


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def cmd_funnel(args: argparse.Namespace, load: Loader) -> int:
    url = db_url(args, load)
    since = datetime.combine(args.date_from, datetime.min.time(), UTC) if args.date_from else None
    until = datetime.combine(args.date_to + timedelta(days=1), datetime.min.time(), UTC) if args.date_to else None

    async def main() -> IvrFunnel:
        funnel = IvrFunnel()
        async with open_store(url, create=False, via=db_via(args)) as store:
            async for page in store.iter_ivr_steps(since, until):
                before = funnel.calls
                for path in page:
                    funnel.add_path(path)
                if funnel.calls // 100_000 > before // 100_000:
                    print(f"{funnel.calls} calls read ...", file=sys.stderr, flush=True)
        return funnel

    funnel = asyncio.run(main())
    rows = funnel.rows()
    if args.json:
        out: dict[str, Any] = {"calls": funnel.calls, "hung_up_in_ivr": funnel.hung_up, "nodes": rows}
        print(json.dumps(out))
        return EXIT_OK
    print(f"{funnel.calls} calls through the IVR, {funnel.hung_up} hung up in it")
    print(f"{'node':<24} {'reached':>8} {'left':>6}  options")
    for r in rows:
        options = ", ".join(f"{k}: {v}" for k, v in r["options"].items())
        print(f"{r['node']:<24} {r['reached']:>8} {r['left']:>6}  {options}")
    return EXIT_OK


def add_funnel_command(ivr_sub: Any, load: Loader) -> argparse.ArgumentParser:
    """Add ``funnel`` to the subparsers of ``cti ivr``."""
    p: argparse.ArgumentParser = ivr_sub.add_parser(
        "funnel", help="the IVR funnel from the call log: callers reaching, leaving and choosing at each node",
        description="Per IVR node: callers who reached it, who hung up there, and the keys they pressed "
                    "(sensitive values masked), for the calls that arrived in the date range (UTC).")
    p.add_argument("--from", dest="date_from", type=_day, default=None, metavar="YYYY-MM-DD",
                   help="the first day of arrivals, UTC (default: the beginning of the log)")
    p.add_argument("--to", dest="date_to", type=_day, default=None, metavar="YYYY-MM-DD",
                   help="the last day of arrivals, included, UTC (default: the end of the log)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="database URL or SQLite file (default: database.url)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="the TOML configuration file (default: config/cti.toml)")
    p.set_defaults(fn=lambda a: cmd_funnel(a, load))
    return p
