"""``cti ivr simulate``: one call over FastAGI from the built-in simulator, printed step by step."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

from callcenter.ivr_simulate import add_simulate_command
from callcenter.settings import Settings
from crm_core.seed import demo_customers
from crm_core.store import Store

ROOT = Path(__file__).resolve().parents[1]
IVR = ROOT / "config" / "ivr"


def _load(path: str | None) -> Settings:
    return Settings()


def run(*argv: str) -> tuple[int, str, str]:
    """``cti ivr simulate ARGV`` through an argparse tree built as cli_ivr builds ``cti ivr``."""
    p = argparse.ArgumentParser(prog="cti")
    sub = p.add_subparsers(dest="cmd", required=True)
    ivr = sub.add_parser("ivr")
    group = ivr.add_subparsers(dest="ivr_cmd", required=True)
    add_simulate_command(group, _load)
    args = p.parse_args(["ivr", "simulate", *argv])
    out, err = io.StringIO(), io.StringIO()
    from callcenter import ivr_simulate
    code = ivr_simulate.cmd_simulate(args, _load, out, err)
    return code, out.getvalue(), err.getvalue()


def test_main_flow_digits_lead_to_a_queue() -> None:
    code, out, _ = run(str(IVR / "main.toml"), "--ani", "5551234", "--digits", "1", "--no-crm")
    assert code == 0, out
    lines = out.splitlines()
    assert any("greeting [play]" in x and "hears hello-world" in x for x in lines)
    assert any("menu [menu]" in x and "pressed 1" in x and "-> sales" in x for x in lines)
    assert lines[-1] == "outcome: queued to sales (skills sales, priority 0)"


def test_telecom_closed_on_sunday_night_goes_after_hours() -> None:
    # 2026-12-27 is a Sunday: closed all day; 2 = voicemail, which the runner cannot do yet
    code, out, _ = run(str(IVR / "telecom.toml"), "--ani", "5551234", "--digits", "2",
                       "--at", "2026-12-27T22:00", "--no-crm")
    lines = out.splitlines()
    assert "clock Sun 2026-12-27 22:00 Europe/Paris  -> after_hours (closed)" in lines[1]
    assert any("after_hours [menu]" in x and "pressed 2" in x and "-> voicemail" in x for x in lines)
    assert "greeting" not in out
    assert lines[-1].startswith("outcome: fallback: queued to support")
    assert code == 1  # a runtime failure: voicemail has no executor in the runner yet


async def _seed(db: Path) -> None:
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        await store.seed_demo(50)


def test_key_account_gets_the_fast_lane(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    asyncio.run(_seed(db))
    key = next(c for c in demo_customers(50) if c.value_tier == "key")
    code, out, err = run(str(IVR / "telecom.toml"), "--ani", key.phones[0], "--at", "2026-12-28T10:00",
                         "--db", str(db))
    assert code == 0, out + err
    assert err == ""
    assert f"lookup: found customer #{key.index}, tier key" in out
    assert any("fast_lane [branch]" in x and "-> key_account" in x for x in out.splitlines())
    assert out.splitlines()[-1] == (f"outcome: queued to key_accounts (skills key_accounts [key_accounts>=3], "
                                    f"priority 10, preferred agent {key.account_manager})")


def test_no_store_runs_as_unknown_caller(tmp_path: Path) -> None:
    code, out, err = run(str(IVR / "main.toml"), "--ani", "5551234", "--digits", "2",
                         "--db", str(tmp_path / "absent.db"))
    assert code == 0
    assert "not reachable" in err and "running as an unknown caller" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "absent.db").exists()
    assert out.splitlines()[-1] == "outcome: queued to support (skills support, priority 0)"


def test_broken_flow_exits_2_with_the_check_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('start = "menu"\n[nodes.menu]\ntype = "menu"\nprompt = "beep"\n'
                   'options = { "1" = "nowhere" }\nfallback = "nowhere"\n')
    code, out, err = run(str(bad), "--ani", "5551234", "--no-crm", "--sounds-dir", str(tmp_path))
    assert code == 2
    lines = out.splitlines()
    assert lines and all(x.startswith(f"{bad}: ") for x in lines)
    assert any("node menu" in x and "nowhere" in x for x in lines)
    assert "1 file(s) checked" in err


def test_sensitive_collect_values_are_masked(tmp_path: Path) -> None:
    code, out, _ = run(str(IVR / "telecom.toml"), "--ani", "5551234", "--digits", "1 2 3 4 5 6 #",
                       "--at", "2026-12-28T10:00", "--no-crm")
    assert code == 0, out
    assert "123456" not in out and "1 2 3 4 5 6" in out.splitlines()[0]  # the header echoes the plan only
    assert any("ask_account [collect]" in x and "pressed ***" in x and "account = ***" in x
               for x in out.splitlines())
    assert "collected: account=***" in out
