"""``cti`` start-up failures: each one is a single stderr line naming the thing and the fix,
with the documented exit status and no traceback.  The CLI runs as a real subprocess against
real peers: sockets bound here, a closed local port for PostgreSQL and the AMI, the
simulator as an Asterisk that refuses the login."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.cli import build_parser
from simulator import AsteriskSim, SimConfig

ROOT = Path(__file__).resolve().parent.parent
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _closed_port() -> int:
    """A local port nothing listens on (connecting to it is refused at once)."""
    return _free_port()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port held by a listening socket of this test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _env(tmp_path: Path, db: Path | str | None = None, **extra: str) -> dict[str, str]:
    url = db if isinstance(db, str) else f"sqlite+aiosqlite:///{db or tmp_path / 'crm.db'}"
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "CTI_DATABASE_URL": url,
            "CTI_HTTP_PORT": str(_free_port()), "CTI_AGI_PORT": str(_free_port()),
            "CTI_AMI_PORT": str(_closed_port()), **extra}


def _cti(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _one_line(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Assert the exit status, that stderr is exactly one non-empty line holding every needle,
    no traceback anywhere, and no banner on stdout; return the line."""
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "running" not in r.stdout and "serving" not in r.stdout, r.stdout
    return lines[0]


@pytest.fixture(scope="module")
def current_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the newest schema (``cti serve`` migrates nothing itself)."""
    tmp = tmp_path_factory.mktemp("schema")
    db = tmp / "crm.db"
    r = _cti(_env(tmp, db), "db", "upgrade")
    assert r.returncode == 0, r.stderr
    return db


# -- ports --------------------------------------------------------------------------------------


def test_demo_on_a_busy_http_port_names_the_port_and_the_flag(tmp_path: Path, busy_port: int) -> None:
    r = _cti(_env(tmp_path), "demo", "--port", str(busy_port))
    _one_line(r, EXIT_FAILURE, f"cti demo: cannot listen for HTTP on 127.0.0.1:{busy_port}", "already in use",
              "--port")
    assert r.stdout == ""  # no banner before everything is bound


def test_serve_on_a_busy_http_port(tmp_path: Path, busy_port: int, current_db: Path) -> None:
    r = _cti(_env(tmp_path, current_db, CTI_HTTP_PORT=str(busy_port)), "serve")
    _one_line(r, EXIT_FAILURE, f"HTTP on 127.0.0.1:{busy_port}", "already in use", "http.port", "CTI_HTTP_PORT")


def test_serve_on_a_busy_fastagi_port(tmp_path: Path, busy_port: int, current_db: Path) -> None:
    r = _cti(_env(tmp_path, current_db, CTI_AGI_PORT=str(busy_port)), "serve")
    _one_line(r, EXIT_FAILURE, f"FastAGI on 127.0.0.1:{busy_port}", "already in use", "agi.port", "CTI_AGI_PORT")


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [["serve"], ["demo"], ["simulate", "--calls", "1"]])
def test_a_missing_config_file(tmp_path: Path, cmd: list[str]) -> None:
    missing = tmp_path / "nowhere.toml"
    r = _cti(_env(tmp_path), "--config", str(missing), *cmd)
    _one_line(r, EXIT_USAGE, f"cti {cmd[0]}: config file {missing} not found", "--config")


def test_an_unreadable_config_file(tmp_path: Path) -> None:
    r = _cti(_env(tmp_path), "serve", "--config", str(tmp_path))  # a directory: open() fails, even for root
    _one_line(r, EXIT_USAGE, f"cannot read config file {tmp_path}", "is a directory", "--config")


def test_an_invalid_config_file_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "cti.toml"
    cfg.write_text('[agi]\nmax_sessions = 0\n\n[ami]\nsecret = "x"\n')
    r = _cti(_env(tmp_path), "serve", "--config", str(cfg))
    _one_line(r, EXIT_USAGE, str(cfg), "agi.max_sessions", "must be > 0", "correct agi.max_sessions")


def test_a_config_file_with_a_syntax_error(tmp_path: Path) -> None:
    cfg = tmp_path / "cti.toml"
    cfg.write_text("[http\nport = 1\n")
    r = _cti(_env(tmp_path), "demo", "--config", str(cfg))
    _one_line(r, EXIT_USAGE, str(cfg), "TOML syntax error", "--config")


def test_an_ivr_default_flow_that_does_not_exist(tmp_path: Path) -> None:
    cfg = tmp_path / "cti.toml"
    cfg.write_text(f'[ivr]\nflows_dir = "{ROOT / "config" / "ivr"}"\ndefault_flow = "nowhere"\n')
    r = _cti(_env(tmp_path), "demo", "--config", str(cfg))
    _one_line(r, EXIT_USAGE, "cti demo: IVR flow error", "'nowhere'", "ivr.default_flow")


def test_an_invalid_environment_variable(tmp_path: Path) -> None:
    r = _cti(_env(tmp_path, CTI_HTTP_PORT="eighty"), "serve")
    _one_line(r, EXIT_USAGE, "CTI_HTTP_PORT", "must be an integer")


def test_a_bad_flag_value_is_one_line_too(tmp_path: Path) -> None:
    r = _cti(_env(tmp_path), "simulate", "--rate", "0")
    _one_line(r, EXIT_USAGE, "cti simulate: argument --rate: must be > 0", "cti simulate --help")


# -- the database -------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [["serve"], ["demo"], ["db", "status"], ["customers", "show", "1001"]])
def test_postgresql_on_a_closed_port(tmp_path: Path, cmd: list[str]) -> None:
    port = _closed_port()
    url = f"postgresql+asyncpg://cti:hunter2@127.0.0.1:{port}/cti"
    r = _cti(_env(tmp_path, url), *cmd)
    line = _one_line(r, EXIT_FAILURE, f"cannot open the database postgresql+asyncpg://cti:***@127.0.0.1:{port}/cti",
                     "connection refused", "database.url", "CTI_DATABASE_URL")
    assert "hunter2" not in line


def test_sqlite_in_a_directory_that_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    db = tmp_path / "file" / "sub" / "crm.db"  # its parent would be inside a regular file
    r = _cti(_env(tmp_path, db), "serve")
    _one_line(r, EXIT_FAILURE, f"cannot open the SQLite database {db}", "not a directory", "database.url")


@pytest.mark.parametrize("cmd", [["simulate", "--calls", "1"], ["db", "upgrade"]])
def test_sqlite_flag_in_a_directory_that_cannot_exist(tmp_path: Path, cmd: list[str]) -> None:
    (tmp_path / "file").write_text("")
    db = tmp_path / "file" / "crm.db"
    r = _cti(_env(tmp_path), *cmd, "--db", str(db))
    _one_line(r, EXIT_FAILURE, f"cannot open the SQLite database {db}", "not a directory", "--db")


def test_an_unusable_database_url(tmp_path: Path) -> None:
    r = _cti(_env(tmp_path, "mysql://cti:hunter2@db/cti"), "serve")
    line = _one_line(r, EXIT_USAGE, "database.url", "not a database URL", "sqlite+aiosqlite:///")
    assert "hunter2" not in line


def test_serve_refuses_an_outdated_schema(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    r = _cti(_env(tmp_path, db), "serve")
    _one_line(r, EXIT_FAILURE, f"cti serve: the CRM schema of sqlite+aiosqlite:///{db}", "run `cti db upgrade` first")


# -- the AMI ------------------------------------------------------------------------------------


def test_serve_without_a_reachable_asterisk(tmp_path: Path, current_db: Path) -> None:
    port = _closed_port()
    t0 = time.monotonic()
    r = _cti(_env(tmp_path, current_db, CTI_AMI_PORT=str(port)), "serve", "--ami-timeout", "0.5")
    _one_line(r, EXIT_FAILURE, f"cannot reach Asterisk AMI at 127.0.0.1:{port}", "connection refused",
              "ami.host", "ami.port", "CTI_AMI_PORT")
    assert time.monotonic() - t0 < 15


async def test_serve_with_a_refused_ami_login(tmp_path: Path, current_db: Path) -> None:
    async with AsteriskSim(SimConfig(agi_port=1, auth_fail_delay_s=0.3)) as sim:  # user ctilp, secret "secret"
        env = _env(tmp_path, current_db, CTI_AMI_PORT=str(sim.ami_port), CTI_AMI_SECRET="not-the-secret")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter", "serve", "--ami-timeout", "0.5", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    r = subprocess.CompletedProcess(["cti"], proc.returncode or 0, out.decode(), err.decode())
    line = _one_line(r, EXIT_FAILURE, f"Asterisk AMI at 127.0.0.1:{sim.ami_port} refused the login of user 'ctilp'",
                     "ami.secret", "CTI_AMI_SECRET", "manager.conf")
    assert "not-the-secret" not in line


def test_ctrl_c_while_serve_waits_for_asterisk_is_a_quiet_130(tmp_path: Path, current_db: Path) -> None:
    env = _env(tmp_path, current_db)
    http = int(env["CTI_HTTP_PORT"])
    proc = subprocess.Popen([sys.executable, "-m", "callcenter", "serve", "--ami-timeout", "30"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:  # HTTP listens, so serve now waits for the AMI login
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            try:
                socket.create_connection(("127.0.0.1", http), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED and err == "" and "serving" not in out, (proc.returncode, err)


# -- help ---------------------------------------------------------------------------------------


def _parsers(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_of_every_command_has_a_help_text() -> None:
    seen = 0
    for p in _parsers(build_parser()):
        for action in p._actions:
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, f"{p.prog} {name}"
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help and choice.help.strip(), f"{p.prog} {choice.dest}"
            seen += 1
        p.format_help()  # every %(default)s expands
    assert seen > 30


@pytest.mark.parametrize(("cmd", "flag", "unit"), [
    ("serve", "--ami-timeout", "seconds"), ("demo", "--rate", "per second"), ("simulate", "--rate", "per second"),
])
def test_the_help_gives_units(cmd: str, flag: str, unit: str) -> None:
    sub = next(p for p in _parsers(build_parser()) if p.prog == f"cti {cmd}")
    action = next(a for a in sub._actions if flag in a.option_strings)
    assert action.help and unit in action.help
