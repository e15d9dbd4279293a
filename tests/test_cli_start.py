"""``cti`` start-up failures: each one is a single stderr line naming the thing and the fix,
with the documented exit status and no traceback.  An Asterisk AMI that is unreachable or
refuses the login is not one: ``cti serve`` keeps serving and retrying, and says so once.
The CLI runs as a real subprocess against real peers: sockets bound here, a closed local port
for PostgreSQL and the AMI, a socket that never answers, the simulator as an Asterisk that
comes up late or refuses the login."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest

from callcenter.cli import build_parser
from crm_core.store import Store
from simulator import AsteriskSim, SimConfig
from simulator.manager_conf import UserSpec

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


def test_a_prompt_missing_from_the_sound_directories_refuses_the_start(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    (sounds / "hello-world.wav").write_bytes(b"")  # the sample flow also plays "beep": not there
    cfg = tmp_path / "cti.toml"
    cfg.write_text(f'[ivr]\nflows_dir = "{ROOT / "config" / "ivr"}"\nsounds_dirs = ["{sounds}"]\n')
    r = _cti(_env(tmp_path), "demo", "--config", str(cfg))
    _one_line(r, EXIT_USAGE, "cti demo: IVR flow error", "'beep'")


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


# -- the AMI: not a start-up failure ------------------------------------------------------------
# `cti serve` serves without an Asterisk that is unreachable or refuses the login: HTTP and
# FastAGI stay up, the client retries with backoff, the log says each change of the link's state
# once, and GET /api/health (and the supervisor feed) tell the link's state.

SECRET = "s3cr3t-never-logged"


def _sim_users(secret: str) -> dict[str, UserSpec]:
    (name, spec), = SimConfig().users.items()
    assert isinstance(spec, tuple)
    return {name: (secret, spec[1], spec[2])}


class Serve:
    """``cti serve`` as a subprocess: its stderr lines as they come, HTTP as a supervisor."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env, self.args = env, args
        self.base = f"http://127.0.0.1:{env['CTI_HTTP_PORT']}"
        self.err: list[str] = []
        self.out: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._serving = asyncio.Event()
        self.token = ""

    async def __aenter__(self) -> Self:
        async with Store.open(self.env["CTI_DATABASE_URL"], create=False) as store:
            await store.set_user("sue", "pw-sue", "supervisor")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter", "serve", *self.args, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [asyncio.create_task(self._read(self.proc.stdout, self.out)),
                         asyncio.create_task(self._read(self.proc.stderr, self.err))]
        return self

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode().rstrip("\n"))
            if line.startswith(b"cti serving"):
                self._serving.set()

    async def serving(self, timeout: float = 20) -> float:
        """Wait for the banner; the seconds it took."""
        t0 = time.monotonic()
        waiter = asyncio.create_task(self._serving.wait())
        assert self.proc is not None
        ended = asyncio.create_task(self.proc.wait())
        done, _ = await asyncio.wait({waiter, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        ended.cancel()
        assert waiter in done, ("no banner", self.out, self.err)
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.base}/api/login", json={"username": "sue", "password": "pw-sue"}) as r:
            assert r.status == 200, await r.text()
            cookie = r.cookies.get("cti_session")
            assert cookie is not None
            self.token = cookie.value
        return time.monotonic() - t0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/api/health", headers=self.auth) as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
            return body

    async def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            h = await self.health()
            if pred(h["ami"][0]):
                return h
            assert time.monotonic() < deadline, (h, self.err)
            await asyncio.sleep(0.1)

    def lines(self, needle: str) -> list[str]:
        return [ln for ln in self.err if needle in ln]

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Ctrl-C, and wait for the exit."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


def _log(line: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(line)
    return record


async def test_serve_keeps_serving_while_asterisk_is_unreachable_then_connects(tmp_path: Path,
                                                                              current_db: Path) -> None:
    port = _closed_port()
    env = _env(tmp_path, current_db, CTI_AMI_PORT=str(port), CTI_AMI_SECRET=SECRET)
    async with Serve(env, "--ami-timeout", "5") as cti:
        assert await cti.serving() < 15  # a refused connection is an answer: no waiting out --ami-timeout
        async with aiohttp.ClientSession() as http, http.get(f"{cti.base}/agent") as r:
            assert r.status == 200  # the pages are up
        _, w = await asyncio.open_connection("127.0.0.1", int(env["CTI_AGI_PORT"]))  # FastAGI accepts
        w.close()
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{cti.base.replace('http', 'ws')}/ws/supervisor",
                                                                     headers=cti.auth) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            first = await ws.receive_json(timeout=5)
            assert first["type"] == "links" and first["links"][0]["up"] is False
            assert first["links"][0]["state"] in ("unreachable", "connecting")
            h = await cti.until(lambda a: a["attempts"] >= 4)  # several retries (0.1 s, 0.2 s, 0.4 s ... apart)
            a = h["ami"][0]
            assert h["ok"] is False and (a["server"], a["host"], a["port"], a["username"]) == (
                "default", "127.0.0.1", port, "ctilp")
            assert a["state"] == "unreachable" and a["reason"] == "connection refused"
            (said,) = cti.lines("unreachable")  # once, over every retry
            rec = _log(said)
            assert rec["level"] == "WARNING" and rec["logger"] == "cti.ami.client"
            assert rec["msg"] == (f"AMI 'default' at 127.0.0.1:{port} (user 'ctilp'): unreachable (connection refused);"
                                  " retrying with backoff (at most 30 s apart)")
            assert (rec["server"], rec["host"], rec["port"], rec["user"], rec["link"]) == (
                "default", "127.0.0.1", port, "ctilp", "unreachable")

            async with AsteriskSim(SimConfig(ami_port=port, agi_port=int(env["CTI_AGI_PORT"]),
                                             users=_sim_users(SECRET))):
                while True:  # the feed says so as soon as the link is up
                    m = await ws.receive_json(timeout=20)
                    if m["type"] == "links" and m["links"][0]["up"]:
                        break
                h = await cti.until(lambda a: a["up"])
                assert h["ok"] is True and h["ami"][0]["state"] == "up" and h["ami"][0]["reason"] == ""
                await asyncio.sleep(0.5)
                (back,) = cti.lines("connected again")
                assert _log(back)["level"] == "INFO" and "failed attempts" in _log(back)["msg"]
                assert len(cti.lines("unreachable")) == 1
                t0 = time.monotonic()
                await cti.stop()  # Ctrl-C, before its Asterisk goes, with the feed still open
                assert time.monotonic() - t0 < 5
    assert cti.proc is not None and cti.proc.returncode == 0, cti.err
    assert "Traceback" not in "\n".join(cti.err) and SECRET not in "\n".join(cti.err + cti.out)


async def test_serve_keeps_retrying_a_refused_login(tmp_path: Path, current_db: Path) -> None:
    async with AsteriskSim(SimConfig(agi_port=1, auth_fail_delay_s=0.05)) as sim:  # user ctilp, secret "secret"
        env = _env(tmp_path, current_db, CTI_AMI_PORT=str(sim.ami_port), CTI_AMI_SECRET="not-the-secret")
        async with Serve(env) as cti:
            await cti.serving()
            h = await cti.until(lambda a: a["attempts"] >= 3)
            a = h["ami"][0]
            assert (a["up"], a["state"], a["reason"]) == (False, "auth_failed", "Authentication failed")
            (said,) = cti.lines("authentication failed")
            rec = _log(said)
            assert rec["level"] == "ERROR" and rec["link"] == "auth_failed"
            assert rec["msg"].startswith(f"AMI 'default' at 127.0.0.1:{sim.ami_port} (user 'ctilp'): "
                                         "authentication failed (Authentication failed); check the username")
    assert cti.proc is not None and cti.proc.returncode == 0, cti.err
    assert "not-the-secret" not in "\n".join(cti.err + cti.out)


@pytest.fixture
def silent_ami() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


async def test_ami_timeout_bounds_the_wait_for_a_silent_asterisk(tmp_path: Path, current_db: Path,
                                                                 silent_ami: int) -> None:
    env = _env(tmp_path, current_db, CTI_AMI_PORT=str(silent_ami))
    async with Serve(env, "--ami-timeout", "0.5") as cti:
        took = await cti.serving()
        assert took < 2.5  # served after --ami-timeout, not after the login's 3 s
        assert (await cti.health())["ami"][0]["state"] in ("connecting", "no_login")
        a = (await cti.until(lambda a: a["state"] == "no_login", 10))["ami"][0]
        assert a["reason"] == "no answer to the login within 3 s"
        assert len(cti.lines("connected but no login")) == 1


def test_ctrl_c_while_serve_waits_for_asterisk_is_a_quiet_130(tmp_path: Path, current_db: Path,
                                                             silent_ami: int) -> None:
    env = _env(tmp_path, current_db, CTI_AMI_PORT=str(silent_ami))
    http = int(env["CTI_HTTP_PORT"])
    proc = subprocess.Popen([sys.executable, "-m", "callcenter", "serve", "--ami-timeout", "30"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:  # HTTP listens, so serve now waits for the AMI's first answer (its login's: 3 s)
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
