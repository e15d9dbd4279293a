"""Flows refused at load with every problem named, and ``cti ivr check`` (callcenter/cli_ivr.py)."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.cli_ivr import add_ivr_commands, check_files, cmd_check
from callcenter.settings import Settings
from callcenter.startup import EXIT_USAGE
from ivr.errors import FlowErrors
from ivr.flow import load_flow, load_flows

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "fixtures" / "ivr_broken"
FLOWS = ROOT / "config" / "ivr"

MANY = [
    "colour: unknown top-level key",
    "node hours: timezone: unknown time zone 'Mars/Olympus' (an IANA name such as 'Europe/Paris')",
    'node hours: week.mon: bad range \'09:00-08:00\' (want "HH:MM-HH:MM", from before to, within 00:00-24:00)',
    "node hours: week.funday: unknown weekday (one of mon, tue, wed, thu, fri, sat, sun)",
    "node ask: min_digits: must not exceed max_digits (8 > 4)",
    "node ask: pattern: bad regular expression: unterminated character set at position 0",
    "node ask: sensitive: must be true or false, got 'yes'",
    ("node check: when.0.var: must be call.NAME, customer.(id|tier|churn_risk|account_no|account_manager|name)"
    " or queue.NAME.(ewt_s|waiting|agents_ready), got 'customer.shoe_size'"),
    "node check: when.0.value: must be a number for op gt, got 'big'",
    "node q: skills.support: minimum level must be an integer in 1..10, got 11",
    'node q: preferred_agent: must be an agent id or "account_manager", got \'bob\'',
]  # (check's default 'nowhere' is not reported: a node that cannot be built has its exits unchecked)


def test_every_problem_of_a_file_is_reported() -> None:
    p = BROKEN / "many.toml"
    with pytest.raises(FlowErrors) as ei:
        load_flow(p)
    assert [e.line() for e in ei.value.errors] == [f"{p}: {x}" for x in MANY]
    assert ei.value.node == "" and ei.value.field == "colour"  # the first one is the error's own


def write(tmp_path: Path, text: str, name: str = "f.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


HANGUP = '[nodes.bye]\ntype = "hangup"\n'


@pytest.mark.parametrize("text,lines", [
    # a cycle of set/branch/play without barge-in never waits for the caller
    ('start = "a"\n[nodes.a]\ntype = "set"\nvars = { x = 1 }\nnext = "b"\n'
     '[nodes.b]\ntype = "branch"\ndefault = "a"\n[[nodes.b.when]]\nvar = "call.x"\nop = "eq"\nvalue = "2"\n'
     'next = "bye"\n' + HANGUP,
     ["node b: default: loop that never waits for input: a -> b -> a"]),
    # the same loop through a play with barge-in waits: allowed
    ('start = "a"\n[nodes.a]\ntype = "play"\nprompts = ["x"]\nbarge_in = true\nnext = "b"\n'
     '[nodes.b]\ntype = "branch"\ndefault = "a"\n[[nodes.b.when]]\nvar = "call.x"\nop = "set"\nnext = "bye"\n'
     + HANGUP, []),
    ('start = "g"\n[nodes.g]\ntype = "goto"\nflow = "elsewhere"\n', [("node g: flow: unknown flow 'elsewhere' "
                                                                   "(no elsewhere.toml beside this file)")]),
    ('start = "t"\n[nodes.t]\ntype = "transfer"\nnumber = "12ab"\n',
     ["node t: number: must be a phone number, got '12ab'"]),
    ('start = "t"\n[nodes.t]\ntype = "transfer"\n', ["node t: number: give exactly one of number or flow"]),
    ('start = "v"\n[nodes.v]\ntype = "voicemail"\nnext = "bye"\nmax_s = 1\n' + HANGUP,
     ["node v: prompt: missing", "node v: max_s: must be an integer in 5..3600, got 1"]),
    ('start = "c"\n[nodes.c]\ntype = "callback"\nqueue = "q"\nprompt = "p"\ndeclined = "bye"\n' + HANGUP,
     ["node c: confirm_prompt: missing"]),
    ('start = "s"\n[nodes.s]\ntype = "say"\nvar = "1x"\nas = "roman"\nnext = "bye"\n' + HANGUP,
     ["node s: var: must be a variable name, got '1x'", "node s: as: must be one of digits, number, got 'roman'"]),
    ('[nodes.bye]\ntype = "hangup"\n', ["start: missing"]),
    ('start = "x"\nnodes = 3\n', ["nodes: missing or empty", "start: unknown node 'x'"]),
    ('start = "m"\n[nodes.m]\ntype = "menu"\nprompt = "p"\noptions = { "1" = "bye" }\n' + HANGUP,
     ["node m: fallback: missing"]),
    ('start = "m"\n[nodes.m]\nprompt = "p"\n', [("node m: type: missing (one of play, menu, collect, lookup, "
                                               "hours, branch, set, queue, callback, voicemail, transfer, say, "
                                               "hangup, goto)")]),
])
def test_refused_with_exact_lines(tmp_path: Path, text: str, lines: list[str]) -> None:
    p = write(tmp_path, text)
    assert [e.line() for e in check_files([p])] == [f"{p}: {x}" for x in lines]


def test_prompts_are_looked_up_in_the_sound_directories(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    (sounds / "digits").mkdir(parents=True)
    (sounds / "hello.gsm").write_bytes(b"")
    (sounds / "digits" / "1.ulaw").write_bytes(b"")
    (sounds / "bye.txt").write_text("not a sound")
    p = write(tmp_path, 'start = "a"\n[nodes.a]\ntype = "play"\nprompts = ["hello", "digits/1", "nope"]\n'
                        'next = "bye"\n[nodes.bye]\ntype = "hangup"\nprompt = "bye"\n')
    assert [e.line() for e in check_files([p], [sounds])] == [
        f"{p}: node a: prompts.2: prompt 'nope' not found in the sound directories",
        f"{p}: node bye: prompt: prompt 'bye' not found in the sound directories",
    ]
    assert check_files([p]) == []  # no sound directory: prompts not checked


def test_bad_toml_and_unreadable_file(tmp_path: Path) -> None:
    p = write(tmp_path, "start = ")
    (line,) = [e.line() for e in check_files([p])]
    assert line.startswith(f"{p}: invalid TOML: ")
    assert [e.line() for e in check_files([tmp_path / "nope.toml"])] == [
        f"{tmp_path / 'nope.toml'}: cannot read: No such file or directory"]


def test_the_shipped_flows_pass() -> None:
    assert check_files([FLOWS]) == []
    assert set(load_flows(FLOWS)) >= {"main", "telecom"}


def _settings(flows_dir: Path) -> Settings:
    return Settings.model_validate({"ivr": {"flows_dir": str(flows_dir)}})


def _run(argv: list[str], flows_dir: Path) -> tuple[int, str]:
    p = argparse.ArgumentParser()
    add_ivr_commands(p.add_subparsers(dest="cmd"), lambda _path: _settings(flows_dir))
    args = p.parse_args(argv)
    out = io.StringIO()
    return cmd_check(args, lambda _path: _settings(flows_dir), out), out.getvalue()


def test_cmd_check_functions(tmp_path: Path) -> None:
    assert _run(["ivr", "check"], FLOWS) == (0, "")
    assert _run(["ivr", "check", str(FLOWS / "telecom.toml")], tmp_path) == (0, "")
    code, out = _run(["ivr", "check", str(BROKEN / "many.toml")], FLOWS)
    assert code == EXIT_USAGE == 2
    assert out.splitlines() == [f"{BROKEN / 'many.toml'}: {x}" for x in MANY]
    code, out = _run(["ivr", "check"], BROKEN)  # the configured directory
    assert code == 2 and len(out.splitlines()) == len(MANY)


HOOKED = "add_ivr_commands" in (ROOT / "callcenter" / "cli.py").read_text()


@pytest.mark.skipif(not HOOKED, reason="callcenter/cli.py does not call add_ivr_commands yet")
def test_cti_ivr_check_subprocess() -> None:
    def run(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", "ivr", "check", *files],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    good = run()
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout == ""
    bad = run(str(BROKEN / "many.toml"), str(FLOWS / "main.toml"))
    assert bad.returncode == 2
    assert bad.stdout.splitlines() == [f"{BROKEN / 'many.toml'}: {x}" for x in MANY]
