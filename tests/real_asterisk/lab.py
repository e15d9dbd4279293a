"""A real Asterisk 22 and ``cti serve`` side by side, on free ports, for one test session.

``AsteriskLab`` configures a temporary prefix-like directory with the lab's ``configure.sh`` (the
project's own ``asterisk/`` files plus the ``[agent-phones]`` and ``[callers]`` lab contexts), adds
``timestampevents`` (every event carries Asterisk's own time) and a second AMI user for the test's
observer (read=all), and runs ``PREFIX/sbin/asterisk -f`` with every runtime directory under the
temporary one.  ``CtiServe`` runs ``python -m callcenter serve`` as a subprocess against it, through
a TCP proxy that can cut its AMI link, after ``cti db upgrade`` of a temporary SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crm_core.store import Store
from tests.real_asterisk.harness import (
    OBSERVER_SECRET,
    OBSERVER_USER,
    AgentDesk,
    Observer,
    ProxyThread,
    free_port,
)
from tests.real_asterisk.scenarios import AGENTS, DNIS, Caller, Lab, password, write_config

REPO = Path(__file__).resolve().parents[2]
AMI_SECRET = "labsecret"


def configure_sh() -> Path | None:
    """The lab's configure.sh: ``$CTI_TEST_ASTERISK_LAB`` or ``../shared/tools/asterisk-lab``."""
    for cand in (os.environ.get("CTI_TEST_ASTERISK_LAB", ""), str(REPO.parent / "shared/tools/asterisk-lab"),
                 "/work/shared/tools/asterisk-lab"):
        if cand and (Path(cand) / "configure.sh").is_file():
            return Path(cand) / "configure.sh"
    return None


def why_not(prefix: str) -> str | None:
    """Why the suite cannot run on this install (None: it can)."""
    if not (Path(prefix) / "sbin" / "asterisk").is_file():
        return f"CTI_TEST_ASTERISK={prefix}: no {prefix}/sbin/asterisk (build it with asterisk-lab/build.sh)"
    if not (Path(prefix) / "lib" / "asterisk" / "modules").is_dir():
        return f"CTI_TEST_ASTERISK={prefix}: no {prefix}/lib/asterisk/modules"
    if configure_sh() is None:
        return "asterisk-lab/configure.sh not found (set CTI_TEST_ASTERISK_LAB to its directory)"
    return None


def cpu_ms(pid: int) -> float:
    """utime + stime of a process, in ms (``/proc/PID/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def _prepare_prefix(install: Path, root: Path, agi_port: int, ami_port: int) -> Path:
    """A prefix-like tree under ``root``: the install's binaries and modules linked, everything
    Asterisk writes (etc, astdb, spool, log, run) of its own; configured by configure.sh."""
    root.mkdir(parents=True, exist_ok=True)
    for d in ("lib", "sbin"):
        (root / d).symlink_to(install / d)
    varlib = root / "var" / "lib" / "asterisk"
    varlib.mkdir(parents=True)
    for entry in (install / "var" / "lib" / "asterisk").iterdir():
        if entry.name not in ("sounds", "moh", "astdb.sqlite3"):  # configure.sh links sounds and moh
            (varlib / entry.name).symlink_to(entry)
    script = configure_sh()
    assert script is not None
    env = {**os.environ, "CTI_AMI_SECRET": AMI_SECRET}
    subprocess.run(["bash", str(script), str(REPO), str(agi_port), str(ami_port), str(root)],
                   check=True, env=env, capture_output=True, text=True)
    etc = root / "etc" / "asterisk"
    manager = etc / "manager.conf"
    text = manager.read_text()
    assert "\n[general]\n" in text, "manager.conf without [general]"
    text = text.replace("\n[general]\n", "\n[general]\ntimestampevents = yes\n", 1)
    text += (f"\n; the test's observer (tests/real_asterisk)\n[{OBSERVER_USER}]\nsecret = {OBSERVER_SECRET}\n"
             "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = all\n"
             "write = call,originate,reporting\n")
    manager.write_text(text)
    # cache too (the compiled-in default is the install's own)
    conf = etc / "asterisk.conf"
    conf.write_text(conf.read_text().replace("[options]", f"astcachedir => {root}/var/cache/asterisk\n[options]"))
    (root / "var" / "cache" / "asterisk").mkdir(parents=True, exist_ok=True)
    return etc / "asterisk.conf"


class AsteriskLab:
    def __init__(self, install: str, root: Path) -> None:
        self.install = Path(install)
        self.root = root
        self.ami_port = free_port()
        self.agi_port = free_port()
        self.conf: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s: float | None = None  # from exec to fully booted with AMI answering
        self.log = root / "asterisk.log"

    @property
    def binary(self) -> str:
        return str(self.install / "sbin" / "asterisk")

    def configure(self) -> None:
        self.conf = _prepare_prefix(self.install, self.root / "prefix", self.agi_port, self.ami_port)

    async def rx(self, command: str, timeout: float = 20) -> tuple[int, str]:
        assert self.conf is not None
        p = await asyncio.create_subprocess_exec(self.binary, "-C", str(self.conf), "-rx", command,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(p.communicate(), timeout)
        except TimeoutError:
            p.kill()
            await p.wait()
            return -1, "timeout"
        return p.returncode or 0, out.decode(errors="replace")

    async def start(self) -> None:
        assert self.conf is not None
        t0 = time.monotonic()
        self.proc = self._spawn()
        await self.wait_booted(30)
        self.started_s = time.monotonic() - t0

    def _spawn(self) -> subprocess.Popen[bytes]:
        """``asterisk -f`` in the foreground of its own process (a ``core restart`` re-executes it in place)."""
        assert self.conf is not None
        with self.log.open("ab") as log:
            return subprocess.Popen([self.binary, "-C", str(self.conf), "-f", "-n"], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited ({self.proc.returncode}); see {self.log}")
            rc, out = await self.rx("core waitfullybooted", timeout=5)
            if rc == 0 and "fully booted" in out and await self._ami_answers():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"asterisk not booted within {timeout} s: {out.strip()}; see {self.log}")
            await asyncio.sleep(0.05)

    async def _ami_answers(self) -> bool:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", self.ami_port)
        except OSError:
            return False
        try:
            banner = await asyncio.wait_for(r.readline(), 2)
        except TimeoutError:
            banner = b""
        w.close()
        return banner.startswith(b"Asterisk Call Manager")

    def cpu_ms(self) -> float:
        assert self.proc is not None
        return cpu_ms(self.proc.pid)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        await self.rx("core stop now", timeout=10)
        for _ in range(200):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        self.proc.kill()  # ours, by its handle
        self.proc.wait(5)


def _child_env() -> dict[str, str]:
    """The environment of the backend: ours minus every CTI_* override (the lab's cti.toml rules)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CtiServe:
    """``python -m callcenter serve`` on the lab's cti.toml (a subprocess; its CPU read from /proc)."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.log = root / "cti-serve.log"
        self.started_s: float | None = None
        self._drain: asyncio.Task[None] | None = None

    async def _cli(self, *args: str) -> str:
        p = await asyncio.create_subprocess_exec(sys.executable, "-m", "callcenter", *args, "--config",
                                                 str(self.config), cwd=REPO, env=_child_env(),
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(p.communicate(), 60)
        text = out.decode(errors="replace")
        if p.returncode:
            raise RuntimeError(f"cti {' '.join(args)} exited {p.returncode}: {text}")
        return text

    async def start(self) -> None:
        await self._cli("db", "upgrade")
        t0 = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcenter", "serve", "--config", str(self.config), cwd=REPO,
                env=_child_env(), stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        try:
            while True:
                line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
                if not line:
                    raise RuntimeError(f"cti serve exited ({await self.proc.wait()}); see {self.log}")
                if line.startswith(b"cti serving"):
                    break
        except TimeoutError:
            raise RuntimeError(f"cti serve not serving within 30 s; see {self.log}") from None
        self.started_s = time.monotonic() - t0
        self._drain = asyncio.ensure_future(self.proc.stdout.read())

    def cpu_ms(self) -> float:
        assert self.proc is not None
        return cpu_ms(self.proc.pid)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()  # ours, by its handle
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await self._drain
        return self.proc.returncode


class RealLab(Lab):
    """Asterisk + cti serve (AMI through a cuttable proxy) + observer + agent bots + a store reader."""

    def __init__(self, install: str, root: Path) -> None:
        self.root = root
        self.pbx = AsteriskLab(install, root)
        self.proxy: ProxyThread | None = None
        self.cti: CtiServe | None = None
        self.http_port = free_port()
        self.db = root / "cti.db"
        self.db_url = f"sqlite+aiosqlite:///{self.db}"
        self._ids = itertools.count(1)
        self._tag = f"{os.getpid() % 10000}x{int(time.time()) % 100000}"
        self._stack = contextlib.AsyncExitStack()
        self.cpu_start_ms = 0.0
        self.pbx_cpu_start_ms = 0.0
        self.foreign_placed = 0
        self.timings: dict[str, float] = {}

    async def start(self) -> None:
        self.pbx.configure()
        await self.pbx.start()
        self.timings["asterisk_start_s"] = round(self.pbx.started_s or 0.0, 2)
        self.proxy = ProxyThread(self.pbx.ami_port)
        await self.proxy.start()
        config = write_config(self.root / "cti", ami_port=self.proxy.port, agi_port=self.pbx.agi_port,
                              http_port=self.http_port, db_url=self.db_url, secret=AMI_SECRET)
        self.obs = Observer("127.0.0.1", self.pbx.ami_port)
        await self.obs.start()
        self.cti = CtiServe(self.root, config)
        await self.cti.start()
        self.timings["cti_serve_start_s"] = round(self.cti.started_s or 0.0, 2)
        self.store = await self._stack.enter_async_context(Store.open(self.db_url, create=False))
        base = f"http://127.0.0.1:{self.http_port}"
        self.desk = AgentDesk(base, {a: password(a) for a in AGENTS})
        await self.desk.start()
        # the backend's cost when nothing happens (pings, agent sockets), for scale
        idle0, t0 = self.cti.cpu_ms(), time.monotonic()
        await asyncio.sleep(2.0)
        self.timings["backend_idle_cpu_ms_per_s"] = round((self.cti.cpu_ms() - idle0) / (time.monotonic() - t0), 1)
        self.cpu_start_ms = self.cti.cpu_ms()
        self.pbx_cpu_start_ms = self.pbx.cpu_ms()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.cti is not None and self.cti.proc is not None and self.cti.proc.returncode is None:
                self.timings["backend_cpu_ms"] = round(self.cti.cpu_ms() - self.cpu_start_ms, 1)
            self.timings["asterisk_cpu_ms"] = round(self.pbx.cpu_ms() - self.pbx_cpu_start_ms, 1)
        if getattr(self, "desk", None) is not None:
            await self.desk.stop()
        await self._stack.aclose()
        if self.cti is not None:
            await self.cti.stop()
        if getattr(self, "obs", None) is not None:
            await self.obs.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        await self.pbx.stop()

    async def originate(self, channel: str, context: str, exten: str, caller: Caller,
                        variables: dict[str, str]) -> str:
        uid = f"rt{self._tag}-{next(self._ids)}"
        fields: list[tuple[str, object]] = [
            ("Channel", channel), ("Context", context), ("Exten", exten), ("Priority", 1),
            ("CallerID", f"{caller.name} <{caller.number}>"), ("Async", "true"), ("ChannelId", uid)]
        fields += [("Variable", f"{k}={v}") for k, v in variables.items()]
        await self.obs.client.send_action("Originate", fields, check=True)
        return uid

    async def place(self, digits: str, after_digits_s: float | None, caller: Caller) -> str:
        self.calls_placed += 1
        extra = {} if after_digits_s is None else {"CALLER_PATIENCE": f"{after_digits_s:g}"}
        return await self.originate(f"Local/{digits}@callers", "cti-inbound", DNIS, caller, extra)

    async def place_foreign(self) -> str:
        self.foreign_placed += 1
        return await self.originate("Local/1@callers", "agent-phones", "1001", self.caller("internal"),
                                    {"CALLER_PATIENCE": "10"})

    def relogin_ref(self, after: float) -> float | None:
        logins = self.obs.logins("ctilp", after)
        return logins[0] if logins else None

    async def restart_pbx(self) -> str:
        rc, out = await self.pbx.rx("core restart now")
        return f"rx rc={rc} {out.strip()!r}"

    async def wait_booted(self, timeout: float) -> None:
        await self.pbx.wait_booted(timeout)
