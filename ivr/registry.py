"""The IVR's flows as a registry: one immutable version at a time, swapped whole on a reload.

``FlowRegistry.current`` is the version new calls take (a read-only ``Mapping[str, Flow]`` and its
number); the runner takes it once at the start of each session, so a call in progress finishes on
the version it started with whatever reloads happen meanwhile.

``reload()`` loads every ``*.toml`` of the flows directory into a new mapping and swaps only when
every file is valid (and the default flow is among them).  A reload that fails changes nothing:
the old version stays, every problem is logged one line each (``FILE: node ID: field: reason``) and
returned in the :class:`ReloadResult`.  A reload that succeeds is logged (who, old -> new version,
flows added/removed/changed) and published on the bus as :class:`~cti.domain.IvrFlowsReloaded`.
Reloads are serialised by a lock (a SIGHUP and a REST call at once load one after the other).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cti.bus import Bus
from cti.domain import IvrFlowsReloaded
from ivr.errors import FlowError, FlowErrors
from ivr.flow import Flow, load_flow

__all__ = ["FlowRegistry", "FlowVersion", "ReloadResult", "load_all"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """One version of the flows: its number (1 for the flows loaded at start) and the flows."""

    number: int
    flows: Mapping[str, Flow]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: int  # the version now current (the old one when the reload failed)
    old_version: int
    errors: tuple[FlowError, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    flows: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        """The errors, one ``FILE: node ID: field: reason`` line each."""
        return [e.line() for e in self.errors]

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "version": self.version, "old_version": self.old_version,
                "flows": list(self.flows), "added": list(self.added), "removed": list(self.removed),
                "changed": list(self.changed), "errors": self.lines()}


def load_all(directory: str | Path, default_flow: str | None = None,
             known_prompts: Collection[str] | None = None) -> tuple[dict[str, Flow], list[FlowError]]:
    """Every flow of the directory and every problem of every file (not only the first bad file's,
    as :func:`ivr.flow.load_flows` raises)."""
    d = Path(directory)
    if not d.is_dir():
        return {}, [FlowError(str(d), "", "IVR flows directory not found (ivr.flows_dir)")]
    files = sorted(d.glob("*.toml"))
    if not files:
        return {}, [FlowError(str(d), "", "no IVR flow (*.toml) in the directory (ivr.flows_dir)")]
    stems = {p.stem for p in files}
    flows: dict[str, Flow] = {}
    errors: list[FlowError] = []
    for p in files:
        try:
            flows[p.stem] = load_flow(p, known_prompts, stems)
        except FlowErrors as exc:
            errors += exc.errors
        except FlowError as exc:
            errors.append(exc)
    if default_flow is not None and not errors and default_flow not in flows:
        errors.append(FlowError(str(d), "", f"no flow {default_flow!r} (ivr.default_flow) among {sorted(flows)}"))
    return flows, errors


class FlowRegistry:
    """The current version of the flows, and the reload that replaces it."""

    def __init__(self, flows: Mapping[str, Flow], *, directory: str | Path | None = None,
                 default_flow: str | None = None, bus: Bus | None = None,
                 known_prompts: Collection[str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._current = FlowVersion(1, MappingProxyType(dict(flows)))
        self.directory = Path(directory) if directory is not None else None
        self.default_flow = default_flow
        self._bus = bus
        self._known = known_prompts
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: str | Path, *, default_flow: str | None = None, bus: Bus | None = None,
             known_prompts: Collection[str] | None = None,
             clock: Callable[[], float] = time.time) -> FlowRegistry:
        """Version 1 from the directory; raises :class:`FlowErrors` (every problem) when a file is bad."""
        flows, errors = load_all(directory, default_flow, known_prompts)
        if errors:
            raise FlowErrors(errors)
        return cls(flows, directory=directory, default_flow=default_flow, bus=bus, known_prompts=known_prompts,
                   clock=clock)

    @property
    def current(self) -> FlowVersion:
        return self._current

    @property
    def version(self) -> int:
        return self._current.number

    @property
    def flows(self) -> Mapping[str, Flow]:
        return self._current.flows

    def reload(self, by: str = "unknown") -> ReloadResult:
        """Load the directory anew; swap only when every file is valid.  Never raises for a bad flow."""
        if self.directory is None:
            raise RuntimeError("this flow registry has no directory to reload from")
        with self._lock:
            old = self._current
            flows, errors = load_all(self.directory, self.default_flow, self._known)
            if errors:
                for e in errors:
                    log.error("IVR reload by %s refused: %s", by, e.line())
                log.error("IVR reload by %s refused: %d error(s); flows stay at version %d",
                          by, len(errors), old.number)
                return ReloadResult(False, old.number, old.number, tuple(errors), flows=tuple(sorted(old.flows)))
            added = tuple(sorted(set(flows) - set(old.flows)))
            removed = tuple(sorted(set(old.flows) - set(flows)))
            changed = tuple(sorted(n for n in set(flows) & set(old.flows) if flows[n] != old.flows[n]))
            new = FlowVersion(old.number + 1, MappingProxyType(flows))
            self._current = new
        names = tuple(sorted(flows))
        log.info("IVR flows reloaded by %s: version %d -> %d; added %s, removed %s, changed %s",
                 by, old.number, new.number, list(added), list(removed), list(changed),
                 extra={"user": by, "old_version": old.number, "version": new.number})
        if self._bus is not None:
            self._bus.publish(IvrFlowsReloaded(new.number, old.number, names, added, removed, changed, by,
                                               self._clock()))
        return ReloadResult(True, new.number, old.number, (), added, removed, changed, names)
