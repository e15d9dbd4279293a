"""``SimConfig``: everything a simulated Asterisk is set up with (frozen, read once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .actors import AgentPhone, default_phones
from .manager_conf import UserSpec, load_manager_conf

SOUNDS = {"hello-world": 11234, "beep": 3404, "demo-congrats": 232000, "vm-intro": 45235}


@dataclass(frozen=True)
class BackgroundMix:
    """What the background traffic is made of (``SimConfig.background_calls_per_s``,
    ``AsteriskSim.run_background``): the weights of its three kinds, and how its calls go.

    * ``internal``: an Originate ``Local/<ext>@internal-phones`` into ``internal,<ext2>`` (another
      client's click-to-dial): Dial of a site phone, which answers, talks and hangs up.
    * ``queue``: an Originate ``Local/wait@callers`` (or ``abandon``) into ``queue-test,<ext>``: hold
      (MusicOnHold), then Dial of that queue's agent phone; ``queue_abandon`` of them hang up in hold.
    * ``redirect``: another AMI client redirects one of *our* callers waiting in ``cti-hold`` (in
      MusicOnHold) to ``voicemail,<ext>`` or, ``to_extension`` of them, ``internal,<ext>``; of those
      sent to voicemail, ``back_to_hold`` are redirected back into ``cti-hold,s,1`` a moment later.
      With nobody of ours waiting, a redirect is skipped.
    """

    internal: float = 0.5
    queue: float = 0.35
    redirect: float = 0.15
    to_extension: float = 0.3
    back_to_hold: float = 0.5
    queue_abandon: float = 0.2
    no_answer: float = 0.1  # site phones that ring until the Dial gives up (20 s)
    ring_s: tuple[float, float] = (0.0, 2.0)
    talk_s: tuple[float, float] = (1.0, 5.0)
    seed: int | None = None


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
    # other calls on the PBX while the simulator runs (real time, calls/s); 0: none
    background_calls_per_s: float = 0.0
    background: BackgroundMix = field(default_factory=BackgroundMix)
    restart_s: float = 3.0  # core restart now: from the Shutdown event until AMI listens again (scaled)

    @classmethod
    def from_manager_conf(cls, path: str, keep_default_users: bool = True, **kw: object) -> SimConfig:
        """Users (secret, read/write classes, ``eventfilter`` lines, ``writetimeout``) from a
        manager.conf file such as the project's ``asterisk/manager.conf``; they replace default
        users of the same name."""
        users: dict[str, UserSpec] = dict(cls().users) if keep_default_users else {}
        users.update(load_manager_conf(path))
        return cls(users=users, **kw)  # type: ignore[arg-type]
