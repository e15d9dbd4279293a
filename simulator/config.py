"""``SimConfig``: everything a simulated Asterisk is set up with (frozen, read once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .actors import AgentPhone, default_phones
from .manager_conf import UserSpec, load_manager_conf

SOUNDS = {"hello-world": 11234, "beep": 3404, "demo-congrats": 232000}


@dataclass(frozen=True)
class SimConfig:
    ami_host: str = "127.0.0.1"
    ami_port: int = 0
    users: dict[str, UserSpec] = field(default_factory=lambda: {
        "ctilp": ("secret", frozenset({"call", "dialplan", "user", "agent", "reporting"}),
                  frozenset({"call", "originate", "reporting"})),
    })
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_source: str | None = None  # local address the FastAGI connections come from (several servers)
    # MixMonitor files: written under this directory when set (MIXMONITOR_FILENAME then shows it);
    # None: no files, and MIXMONITOR_FILENAME shows Asterisk's /var/spool/asterisk/monitor/
    record_dir: str | None = None
    time_factor: float = 1.0
    phones: tuple[AgentPhone, ...] = field(default_factory=default_phones)
    cel: bool = True  # cel_manager on (events=ALL), as in the traces; CEL is class call
    write_timeout_ms: int = 100
    auth_fail_delay_s: float = 1.0
    sounds: dict[str, int] = field(default_factory=lambda: dict(SOUNDS))
    default_sound_samples: int = 8000
    max_event_queue: int = 10000
    # queues.conf of the traces' Asterisk (01, v3-05): only listed by QueueStatus, never used
    queues: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
        ("support", "ringall", (("Agent1001", "Local/1001@agents/n"),)),)

    @classmethod
    def from_manager_conf(cls, path: str, keep_default_users: bool = True, **kw: object) -> SimConfig:
        """Users (secret, read/write classes, ``eventfilter`` lines, ``writetimeout``) from a
        manager.conf file such as the project's ``asterisk/manager.conf``; they replace default
        users of the same name."""
        users: dict[str, UserSpec] = dict(cls().users) if keep_default_users else {}
        users.update(load_manager_conf(path))
        return cls(users=users, **kw)  # type: ignore[arg-type]
