"""The real-Asterisk suite runs only with ``CTI_TEST_ASTERISK=PREFIX`` (an install made by
asterisk-lab/build.sh, e.g. /srv/asterisk); otherwise every test here is skipped with the reason.

One session: Asterisk on free ports (AMI, and our FastAGI port in its dialplan), ``cti serve`` as a
subprocess against it (its AMI link through a proxy the outage test cuts), an observer on a second
AMI user, and agent bots.  ``core restart now`` runs last (tests/real_asterisk/test_restart.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

HERE = Path(__file__).resolve().parent
ENV = "CTI_TEST_ASTERISK"
REPORT: dict[str, Any] = {}  # printed in the terminal summary


def _skip_reason() -> str | None:
    prefix = os.environ.get(ENV, "")
    if not prefix:
        return f"needs a real Asterisk 22: set {ENV}=PREFIX (an install made by asterisk-lab/build.sh)"
    from tests.real_asterisk.lab import why_not

    return why_not(prefix)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


def _kept_dir(keep: str) -> str:
    Path(keep).mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="cti-rt-", dir=keep)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def lab() -> AsyncIterator[Any]:
    from tests.real_asterisk.lab import RealLab

    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    keep = os.environ.get("CTI_TEST_ASTERISK_KEEP")  # a directory to keep the logs and the database in
    with contextlib.ExitStack() as stack:
        tmp = _kept_dir(keep) if keep else stack.enter_context(tempfile.TemporaryDirectory(prefix="cti-rt-"))
        lab = RealLab(os.environ[ENV], Path(tmp))
        REPORT["root"] = tmp if keep else "(removed)"
        try:
            await lab.start()
            yield lab
        finally:
            await lab.stop()
            REPORT.update(lab.timings, calls=lab.calls_placed, foreign_calls=lab.foreign_placed)
            for who in ("backend", "asterisk"):
                if lab.calls_placed and f"{who}_cpu_ms" in lab.timings:
                    REPORT[f"{who}_cpu_ms_per_call"] = round(lab.timings[f"{who}_cpu_ms"] / lab.calls_placed, 1)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.write_line("real Asterisk lab: " + ", ".join(
            f"{k}={v}" for k, v in REPORT.items() if k != "lines"))
        for line in REPORT.get("lines", []):
            terminalreporter.write_line("  " + line)
