"""Typed, layered settings for the CTI backend.

Layers, lowest to highest precedence: code defaults < TOML file < environment
variables.  Everything is validated by pydantic (strict types, unknown keys
rejected) and every failure is raised as :class:`SettingsError`, whose message
names the source (file or environment variable), the key path
(``queues.sales.ring_timeout_s``, ``agents[3].id``) and the reason.

The only I/O is reading the TOML file.  A relative sqlite path in
``database.url`` is left as is (it resolves against the current directory).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ENV_VARS",
    "AcdSettings",
    "AgentSettings",
    "AgiSettings",
    "AmiSettings",
    "DatabaseSettings",
    "HttpSettings",
    "IvrSettings",
    "LogSettings",
    "QueueSettings",
    "Settings",
    "SettingsError",
    "SimSettings",
    "load_settings",
]

REDACTED = "***"


class SettingsError(Exception):
    """Invalid configuration. ``source`` is the file or env variable, ``key`` the key path."""

    def __init__(self, source: str, key: str | None, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Proficiency = Annotated[int, Field(ge=1, le=10)]
Name = Annotated[str, Field(min_length=1)]


class AmiSettings(_Model):
    host: Name = "127.0.0.1"
    port: Port = 5038
    username: Name = "ctilp"
    secret: SecretStr = SecretStr("")
    auth: Literal["plain", "md5"] = "plain"
    events: str | None = None
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "default"
    # where this server's FastAGI connections come from (default: ``host``); with several
    # Asterisk servers this tells whose call a FastAGI session is
    agi_peers: list[Name] = Field(default_factory=list)

    def agi_peer_hosts(self) -> frozenset[str]:
        return frozenset(self.agi_peers or [self.host])


class AgiSettings(_Model):
    bind_host: Name = "127.0.0.1"
    port: Port = 4573
    max_sessions: PositiveInt = 2000
    command_timeout_s: PositiveFloat = 60


class HttpSettings(_Model):
    bind_host: Name = "127.0.0.1"
    port: Port = 8080
    public_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "http://127.0.0.1:8080"
    allowed_origins: list[Name] = Field(default_factory=lambda data: [data["public_url"]])


class DatabaseSettings(_Model):
    url: Name = "sqlite+aiosqlite:///var/cti.db"


class AcdSettings(_Model):
    default_queue: Name = "support"
    wrap_up_s: NonNegFloat = 5.0
    ring_timeout_s: PositiveInt = 15
    record: bool = False


class QueueSettings(_Model):
    skills: Annotated[list[Name], Field(min_length=1)]
    ring_timeout_s: PositiveInt = 15
    wrap_up_s: NonNegFloat = 5.0
    record: bool = False
    max_wait_s: PositiveFloat = 600.0


class AgentSettings(_Model):
    id: Annotated[str, Field(pattern=r"^[0-9]+$")]
    name: Name
    skills: Annotated[dict[str, Proficiency], Field(min_length=1)]
    password: str = ""


class IvrSettings(_Model):
    flows_dir: Name = "config/ivr"
    default_flow: Name = "main"
    # where `cti ivr check` looks for each prompt (foo.wav, foo.gsm, foo.ulaw ...); none: not checked
    sounds_dirs: list[Name] = Field(default_factory=list)


class SimSettings(_Model):
    time_factor: PositiveFloat = 0.05  # simulated seconds -> wall seconds
    agents: Annotated[int, Field(ge=0)] = 10
    call_rate: NonNegFloat = 1.0  # calls per simulated second (Poisson)
    answer_after_s: NonNegFloat = 2.0
    talk_s: PositiveFloat = 20.0  # mean talk time
    patience_s: PositiveFloat = 60.0  # mean caller patience before abandon
    wrap_up_s: NonNegFloat = 5.0
    duration_s: PositiveFloat | None = None  # None: run until stopped
    seed: int | None = None  # None: non-deterministic


class LogSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    json_: bool = Field(default=True, alias="json")

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @property
    def json(self) -> bool:  # type: ignore[override]
        return self.json_


def _default_queues() -> dict[str, QueueSettings]:
    return {
        "sales": QueueSettings(skills=["sales"]),
        "support": QueueSettings(skills=["support"]),
    }


class Settings(_Model):
    skills: list[Name] = Field(default_factory=lambda: ["sales", "support"])
    ami: AmiSettings = Field(default_factory=AmiSettings)
    ami_servers: list[AmiSettings] = Field(default_factory=list)  # more Asterisk servers
    agi: AgiSettings = Field(default_factory=AgiSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    acd: AcdSettings = Field(default_factory=AcdSettings)
    queues: dict[Name, QueueSettings] = Field(default_factory=_default_queues)
    agents: list[AgentSettings] = Field(default_factory=list)
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _cross_check(self) -> Settings:
        # Raised as SettingsError (not ValueError) so pydantic lets it through
        # untouched; load_settings() re-labels it with the file name.
        known = set(self.skills)
        seen_skills: set[str] = set()
        for i, s in enumerate(self.skills):
            if s in seen_skills:
                raise SettingsError("<settings>", f"skills[{i}]", f"duplicate skill {s!r}")
            seen_skills.add(s)
        for qname, q in self.queues.items():
            for i, s in enumerate(q.skills):
                if s not in known:
                    raise SettingsError(
                        "<settings>", f"queues.{qname}.skills[{i}]",
                        f"unknown skill {s!r} (not in top-level skills {sorted(known)})",
                    )
        seen_ids: dict[str, int] = {}
        for i, a in enumerate(self.agents):
            if a.id in seen_ids:
                raise SettingsError(
                    "<settings>", f"agents[{i}].id",
                    f"duplicate agent id {a.id!r} (also agents[{seen_ids[a.id]}].id)",
                )
            seen_ids[a.id] = i
            for s in a.skills:
                if s not in known:
                    raise SettingsError(
                        "<settings>", f"agents[{i}].skills.{s}",
                        f"unknown skill {s!r} (not in top-level skills {sorted(known)})",
                    )
        names: dict[str, str] = {self.ami.name: "ami.name"}
        secrets: dict[str, str] = {}
        for i, srv in enumerate(self.ami_servers):
            key = f"ami_servers[{i}]"
            if srv.name in names:
                raise SettingsError("<settings>", f"{key}.name",
                                    f"duplicate Asterisk server name {srv.name!r} (also {names[srv.name]})")
            var = secret_env_var(srv.name)
            if var in secrets:
                raise SettingsError("<settings>", f"{key}.name", f"server name {srv.name!r} takes the same "
                                    f"secret variable {var} as {secrets[var]}")
            names[srv.name], secrets[var] = f"{key}.name", f"{key}.name"
        if self.ami_servers:
            self._check_servers_apart()
        if self.queues and self.acd.default_queue not in self.queues:
            raise SettingsError(
                "<settings>", "acd.default_queue",
                f"unknown queue {self.acd.default_queue!r} (queues: {sorted(self.queues)})",
            )
        return self

    def _check_servers_apart(self) -> None:
        """Several servers must be told apart: own address, own FastAGI peers (IP addresses,
        since a FastAGI connection is matched by the address it comes from)."""
        seen_at: dict[tuple[str, int], str] = {}
        peers: dict[str, str] = {}
        for key, srv in [("ami", self.ami)] + [(f"ami_servers[{i}]", x) for i, x in enumerate(self.ami_servers)]:
            at = (srv.host.lower(), srv.port)
            if at in seen_at:
                raise SettingsError("<settings>", f"{key}.host", f"{srv.host}:{srv.port} is also {seen_at[at]}: "
                                    "one Asterisk would be tracked twice")
            seen_at[at] = key
            field = "agi_peers" if srv.agi_peers else "host"
            for peer in srv.agi_peer_hosts():
                try:
                    ipaddress.ip_address(peer)
                except ValueError:
                    raise SettingsError("<settings>", f"{key}.{field}", f"{peer!r} is not an IP address: with "
                                        "several Asterisk servers, list the addresses their FastAGI "
                                        "connections come from in agi_peers") from None
                if peer in peers:
                    raise SettingsError("<settings>", f"{key}.{field}", f"FastAGI peer {peer} is also "
                                        f"{peers[peer]}'s: a session could not be told apart")
                peers[peer] = key

    def queue(self, name: str) -> QueueSettings:
        return self.queues[name]

    @property
    def asterisks(self) -> list[AmiSettings]:
        """Every Asterisk server: ``ami`` first, then ``ami_servers``."""
        return [self.ami, *self.ami_servers]

    def redacted(self) -> dict[str, Any]:
        """Plain dict for logging: secrets become "***" (empty secrets stay "")."""
        data = self.model_dump(mode="python", by_alias=True)
        secret = self.ami.secret.get_secret_value()
        data["ami"]["secret"] = REDACTED if secret else ""
        for srv, out in zip(self.ami_servers, data["ami_servers"], strict=True):
            out["secret"] = REDACTED if srv.secret.get_secret_value() else ""
        for agent in data["agents"]:
            if agent["password"]:
                agent["password"] = REDACTED
        data["database"]["url"] = _redact_url(self.database.url)
        return data


def secret_env_var(server_name: str) -> str:
    """The environment variable that holds an extra Asterisk server's AMI secret."""
    return "CTI_AMI_SECRET_" + re.sub(r"[^A-Z0-9]", "_", server_name.upper())


def _redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", rf"\g<1>{REDACTED}@", url)


# --- environment overrides ---------------------------------------------------

# variable -> (key path, is_int)
ENV_VARS: dict[str, tuple[tuple[str, ...], bool]] = {
    "CTI_DATABASE_URL": (("database", "url"), False),
    "CTI_AMI_HOST": (("ami", "host"), False),
    "CTI_AMI_PORT": (("ami", "port"), True),
    "CTI_AMI_USERNAME": (("ami", "username"), False),
    "CTI_AMI_SECRET": (("ami", "secret"), False),
    "CTI_AGI_PORT": (("agi", "port"), True),
    "CTI_HTTP_PORT": (("http", "port"), True),
    "CTI_HTTP_PUBLIC_URL": (("http", "public_url"), False),
    "CTI_LOG_LEVEL": (("log", "level"), False),
}


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(err: Mapping[str, Any]) -> str:
    t, ctx = err["type"], err.get("ctx") or {}
    inp = err.get("input")
    simple: dict[str, Callable[[], str]] = {
        "greater_than": lambda: f"must be > {ctx['gt']}",
        "greater_than_equal": lambda: f"must be >= {ctx['ge']}",
        "less_than": lambda: f"must be < {ctx['lt']}",
        "less_than_equal": lambda: f"must be <= {ctx['le']}",
        "extra_forbidden": lambda: "unknown key",
        "missing": lambda: "required key is missing",
        "string_pattern_mismatch": lambda: f"{inp!r} does not match pattern {ctx['pattern']!r}",
        "too_short": lambda: f"must have at least {ctx.get('min_length')} item(s)"
        if not isinstance(inp, str) else "must not be empty",
        "string_too_short": lambda: "must not be empty",
    }
    if t in simple:
        return simple[t]()
    msg = err["msg"]
    if t.endswith(("_type", "_parsing")):
        return f"wrong type: {msg[0].lower() + msg[1:]}, got {type(inp).__name__} {inp!r}"
    return f"{msg[0].lower() + msg[1:]} (got {inp!r})"


def _set(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        sub = d.get(p)
        if not isinstance(sub, dict):
            sub = d[p] = {}
        d = sub
    d[path[-1]] = value


def load_settings(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Defaults < TOML file at ``path`` (if any) < ``env`` (default ``os.environ``)."""
    if env is None:
        env = os.environ
    source = "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError(source, None, "file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(source, None, f"TOML syntax error: {e}") from None
        except OSError as e:
            raise SettingsError(source, None, f"cannot read file: {e.strerror or e}") from None

    env_keys: dict[str, str] = {}  # dotted key -> variable
    for var, (path_keys, is_int) in ENV_VARS.items():
        raw = env.get(var)
        if raw is None:
            continue
        value: Any = raw
        if is_int:
            try:
                value = int(raw.strip())
            except ValueError:
                raise SettingsError(
                    f"environment variable {var}", ".".join(path_keys),
                    f"must be an integer, got {raw!r}",
                ) from None
        _set(data, path_keys, value)
        env_keys[".".join(path_keys)] = var

    ivr = data.get("ivr")
    if path is not None and isinstance(ivr, dict) and isinstance(ivr.get("flows_dir"), str):
        flows = Path(ivr["flows_dir"]).expanduser()
        if not flows.is_absolute():  # relative to the file that names it, not to the cwd
            ivr["flows_dir"] = str(Path(path).resolve().parent / flows)
    if path is not None and isinstance(ivr, dict) and isinstance(ivr.get("sounds_dirs"), list):
        ivr["sounds_dirs"] = [  # relative to the file too
            str(Path(path).resolve().parent / Path(d).expanduser()) if isinstance(d, str) else d
            for d in ivr["sounds_dirs"]]

    servers = data.get("ami_servers")
    for i, srv in enumerate(servers if isinstance(servers, list) else []):
        name = srv.get("name") if isinstance(srv, dict) else None
        var = secret_env_var(name) if isinstance(name, str) else ""
        if var and var in env:
            srv["secret"] = env[var]
            env_keys[f"ami_servers[{i}].secret"] = var

    try:
        return Settings.model_validate(data)
    except SettingsError as e:
        raise SettingsError(source, e.key, e.reason) from None
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        key = _dotted(err["loc"])
        if key == "log.json_":
            key = "log.json"
        src = f"environment variable {env_keys[key]}" if key in env_keys else source
        raise SettingsError(src, key, _reason(err)) from None
