"""Start-up of the ``cti`` commands: every failure a user can act on becomes one line.

A command that cannot start prints ``cti <command>: <what failed> (<why>); <the fix>`` on
stderr, and nothing else, and exits with the code its kind has (``cli``'s docstring lists
them).  The pieces here turn the errors of the layers below into those lines:

* :func:`listening` wraps a bind (HTTP, FastAGI): the port, its address and the setting;
* :func:`database_errors` / :func:`open_store` wrap opening the CRM database: the URL
  (password hidden) or SQLite file, and where it was configured;
* :func:`hold_log` keeps the log records of the start-up until it has succeeded, so a
  failure shows its one line and not a screenful of retries before it.

An Asterisk AMI that cannot be reached, or refuses the login, is not a start-up failure:
``cti serve`` serves without it while its client retries (``callcenter.app``), and says so
in the log (one line per change of the link's state) and on the pages.

Exceptions::

    StartupError            the world is not as the command needs it (``code``: exit status)
     ├── ListenError        a port could not be listened on (taken, privileged, no such address)
     └── DatabaseError      the CRM database cannot be reached or opened (code 2: unusable URL)
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from callcenter.settings import SettingsError
from crm_core.migrate import SchemaOutdated
from crm_core.store import Store
from ivr.errors import FlowError

__all__ = [
    "DB_VIA_FLAG",
    "DB_VIA_SETTINGS",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "START_ERRORS",
    "DatabaseError",
    "ListenError",
    "StartupError",
    "check_db_url",
    "database_errors",
    "error_line",
    "hold_log",
    "listening",
    "open_store",
    "release_log",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # the environment: a port taken, a database unreachable or not ready
EXIT_USAGE = 2  # the command line or the configuration as written
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

DB_VIA_SETTINGS = "database.url (config file or CTI_DATABASE_URL)"
DB_VIA_FLAG = "--db"


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks folded into single spaces."""
    return " ".join(text.split())


def os_reason(e: OSError) -> str:
    """``connection refused``, ``address already in use: /path``: the OS's words, lower case."""
    if isinstance(e, TimeoutError) and not e.errno:
        return "timed out"
    text = os.strerror(e.errno) if e.errno else (str(e) or type(e).__name__)
    text = text[:1].lower() + text[1:]
    return f"{text}: {e.filename}" if e.filename else text


class StartupError(Exception):
    """A command cannot start: ``problem`` says what failed and why, ``fix`` what to do."""

    def __init__(self, problem: str, fix: str, code: int = EXIT_FAILURE) -> None:
        self.problem, self.fix, self.code = one_line(problem), one_line(fix), code
        super().__init__(f"{self.problem}; {self.fix}")


class ListenError(StartupError):
    """A port could not be listened on; ``setting`` is its section (``http``, ``agi``) and
    ``fix`` a template whose ``{where}`` says where the port is chosen."""

    def __init__(self, problem: str, fix: str, setting: str, where: str) -> None:
        super().__init__(problem, fix.format(where=where))
        self.setting, self._template = setting, fix

    def chosen_by(self, where: str) -> ListenError:
        """The same error, saying the port is chosen by ``where`` (a command's flag)."""
        return ListenError(self.problem, self._template, self.setting, where)


class DatabaseError(StartupError):
    pass


# what a command may fail to start with, each told in one line by error_line
START_ERRORS = (StartupError, SettingsError, FlowError, SchemaOutdated)


def error_line(exc: StartupError | SettingsError | FlowError | SchemaOutdated) -> tuple[int, str]:
    """The exit status and the one line (without the command's name) for a start-up failure."""
    if isinstance(exc, StartupError):
        return exc.code, str(exc)
    if isinstance(exc, SettingsError):
        return EXIT_USAGE, _settings_line(exc)
    if isinstance(exc, FlowError):
        return EXIT_USAGE, one_line(f"IVR flow error: {exc}; correct that flow file, "
                                    "or ivr.flows_dir and ivr.default_flow")
    return EXIT_FAILURE, one_line(str(exc))


def _settings_line(e: SettingsError) -> str:
    reason = one_line(e.reason)
    if e.key is None:  # the file itself
        if reason == "file not found":
            return f"config file {e.source} not found; pass an existing file with --config PATH"
        if reason.startswith("cannot read file"):
            why = reason.removeprefix("cannot read file").lstrip(": ").lower()
            return f"cannot read config file {e.source} ({why}); pass a readable TOML file with --config PATH"
        return f"config file {e.source}: {reason}; correct the file, or pass another with --config PATH"
    where = e.source if e.source.startswith("environment variable") else f"{e.key} in {e.source}"
    return f"invalid configuration: {e.source}: {e.key}: {reason}; correct {where}"


# -- log held during the start-up --------------------------------------------------------------


class HeldLog(logging.Handler):
    """The root handler while a command starts: it keeps the records (the newest ``limit``)
    until :func:`release_log` hands them to ``target``, the real handler, or drops them."""

    def __init__(self, target: logging.Handler, limit: int = 10_000) -> None:
        super().__init__(logging.NOTSET)
        self.target = target
        self.records: collections.deque[logging.LogRecord] = collections.deque(maxlen=limit)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def hold_log(target: logging.Handler) -> None:
    """Make the root logger hold its records until :func:`release_log`."""
    logging.getLogger().handlers[:] = [HeldLog(target)]


def release_log(*, keep: bool = True) -> None:
    """Install the real handler; with ``keep``, it first gets the held records in order."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    for h in root.handlers:
        if not isinstance(h, HeldLog):
            handlers.append(h)
            continue
        if keep:
            for record in h.records:
                if record.levelno >= h.target.level:
                    h.target.handle(record)
        handlers.append(h.target)
    root.handlers[:] = handlers


# -- ports --------------------------------------------------------------------------------------


_PORT_ENV = {"http": "CTI_HTTP_PORT", "agi": "CTI_AGI_PORT"}


@contextlib.contextmanager
def listening(service: str, host: str, port: int, setting: str) -> Iterator[None]:
    """Turn the failure of binding ``host:port`` into a :class:`ListenError` naming the port
    and ``setting.port`` / ``setting.bind_host`` (``http``, ``agi``)."""
    try:
        yield
    except OSError as e:
        env = _PORT_ENV.get(setting)
        where = f"{setting}.port" + (f" or {env}" if env else "")
        if e.errno == errno.EADDRINUSE:
            problem = f"cannot listen for {service} on {host}:{port} (port {port} is already in use)"
            fix = "stop the program that holds it, or choose another port with {where}"
        elif e.errno == errno.EACCES:
            problem = f"cannot listen for {service} on {host}:{port} (permission denied)"
            fix = "ports below 1024 need privileges: choose a higher one with {where}"
        else:
            problem = f"cannot listen for {service} on {host}:{port} ({os_reason(e)})"
            fix = f"check {setting}.bind_host (an address of this machine) and the port ({{where}})"
        raise ListenError(problem, fix, setting, where) from None


# -- the database -------------------------------------------------------------------------------


def _shown(url: str) -> str:
    with contextlib.suppress(ArgumentError):
        return make_url(url).render_as_string(hide_password=True)
    return url.split("@")[-1]


def check_db_url(url: str, via: str = DB_VIA_SETTINGS) -> None:
    """Raise a :class:`DatabaseError` (exit 2) unless ``url`` is a SQLite or PostgreSQL URL."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as e:
        backend, why = "", one_line(str(e))
    else:
        why = f"unsupported database {backend!r}"
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseError(f"{via}: {_shown(url)!r} is not a database URL cti can use ({why})",
                            "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/NAME",
                            code=EXIT_USAGE)


def _db_reason(e: BaseException) -> str:
    if isinstance(e, DBAPIError) and e.orig is not None:
        e = e.orig
    if isinstance(e, FileExistsError) and e.filename and not Path(e.filename).is_dir():
        return f"not a directory: {e.filename}"
    if isinstance(e, OSError):
        return os_reason(e)
    text = str(e).strip()
    return one_line(text.splitlines()[0]) if text else type(e).__name__


@contextlib.contextmanager
def database_errors(url: str, via: str = DB_VIA_SETTINGS) -> Iterator[None]:
    """Turn a failure to reach or open the database at ``url`` into a :class:`DatabaseError`
    naming it and ``via``, where it was configured.  An outdated schema passes through."""
    check_db_url(url, via)
    try:
        yield
    except (OSError, SQLAlchemyError) as e:
        if isinstance(e, (ArgumentError, NoSuchModuleError)):
            raise DatabaseError(f"{via}: {_shown(url)!r} is not a database URL cti can use ({_db_reason(e)})",
                                "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/NAME",
                                code=EXIT_USAGE) from None
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            raise DatabaseError(f"cannot open the SQLite database {parsed.database} ({_db_reason(e)})",
                                f"point {via} at a file in a writable directory") from None
        raise DatabaseError(f"cannot open the database {_shown(url)} ({_db_reason(e)})",
                            f"start PostgreSQL there, or correct the host, port, user, password or name"
                            f" in {via}") from None


@contextlib.asynccontextmanager
async def open_store(url: str, *, create: bool = True, via: str = DB_VIA_SETTINGS) -> AsyncIterator[Store]:
    """``Store.open`` with its failures to open as :class:`DatabaseError`."""
    with database_errors(url, via):
        store = await Store.open(url, create=create)
    try:
        yield store
    finally:
        await store.close()
