"""Background traffic: the other calls a real PBX carries besides the contract's (``site`` contexts).

``BackgroundTraffic`` places them at a rate (Poisson arrivals, real time) in the mix a
``config.BackgroundMix`` gives: internal calls, calls through another queue, and foreign Redirects
of our callers waiting in ``cti-hold``. They go through the same Originate and dialplan code as our
own calls, so every event is what Asterisk sends for that dialplan (see ``site``); only the
foreign Redirects touch our callers, and they are noted in the ledger (``CallRecord.foreign``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from . import site
from .config import BackgroundMix
from .model import Channel
from .originate import Originator

VOICEMAIL_BOX = "2005"


@dataclass
class BackgroundStats:
    internal: int = 0
    queue: int = 0
    redirects: int = 0  # our callers redirected out of cti-hold by another client
    back_to_hold: int = 0  # ... and redirected back into cti-hold later
    skipped: int = 0  # redirects with none of ours waiting in cti-hold, calls refused while Asterisk was down
    linkedids: list[str] = field(default_factory=list)  # the background calls placed (when waited for)


class BackgroundTraffic:
    def __init__(self, originator: Originator, mix: BackgroundMix, keep_ids: bool = True) -> None:
        self.originator, self.mix = originator, mix
        self.switch, self.far = originator.switch, originator.far
        self.rng = random.Random(mix.seed)
        self._ext = itertools.count()
        self._n = itertools.count(1)
        self.stats = BackgroundStats()
        self.pending = 0  # Originates placed whose channels do not exist yet
        self.keep_ids = keep_ids  # note each call's linkedid (off for an endless run)

    async def run(self, rate_per_s: float, count: int | None = None, duration_s: float | None = None) -> None:
        """Place background traffic at ``rate_per_s`` until ``count`` arrivals or ``duration_s``
        (real time) have passed; with neither, until cancelled."""
        loop = asyncio.get_running_loop()
        end = None if duration_s is None else loop.time() + duration_s
        n = 0
        while (count is None or n < count) and (end is None or loop.time() < end):
            self.one()
            n += 1
            if count is None or n < count:
                await asyncio.sleep(self.rng.expovariate(rate_per_s) if rate_per_s > 0 else 1.0)

    def one(self) -> None:
        """One arrival of the mix."""
        m = self.mix
        kind = self.rng.choices(("internal", "queue", "redirect"), (m.internal, m.queue, m.redirect))[0]
        if not self.switch.accepting:
            self.stats.skipped += 1
        elif kind == "internal":
            self.internal_call()
        elif kind == "queue":
            self.queue_call()
        elif not self.redirect_one():
            self.stats.skipped += 1

    # ------------------------------------------------------------------ the kinds

    def _ext_no(self) -> str:
        return str(2100 + next(self._ext) % 7900)  # 2100-9999: site phones, never an agent's

    def _phone(self) -> str:
        """A site phone for one call: its program registered for the Dial that reaches it."""
        ext, m = self._ext_no(), self.mix
        self.far.expect(f"Local/{ext}@{site.PHONES}", site.phone(
            round(self.rng.uniform(*m.ring_s), 1), round(self.rng.uniform(*m.talk_s), 1),
            self.rng.random() >= m.no_answer))
        return ext

    def _originate(self, **kw: Any) -> None:
        told = False

        def created(linkedid: str) -> None:
            nonlocal told
            if not told:
                told = True
                self.pending -= 1
                if self.keep_ids:
                    self.stats.linkedids.append(linkedid)

        def responded(ok: bool) -> None:  # refused before any channel existed
            nonlocal told
            if not told:
                told = True
                self.pending -= 1

        self.pending += 1
        self.originator.originate(**kw, on_created=created, on_response=responded)

    def internal_call(self) -> None:
        a, b = self._ext_no(), self._phone()
        self.stats.internal += 1
        self._originate(channel=f"Local/{a}@{site.PHONES}", context=site.INTERNAL, exten=b,
                        callerid=f"Ext {a} <{a}>", action_id=f"bg-{next(self._n)}", program=site.caller())

    def queue_call(self) -> None:
        b, n = self._phone(), next(self._n)
        abandon = self.rng.random() < self.mix.queue_abandon
        patience = round(self.rng.uniform(0.5, site.QUEUE_HOLD_S - 0.2), 1) if abandon else None
        self.stats.queue += 1
        self._originate(channel=f"Local/{'abandon' if abandon else 'wait'}@callers", context=site.QUEUE, exten=b,
                        callerid=f"Queue Caller <555{8000000 + n}>", action_id=f"bg-{n}",
                        program=site.caller(patience))

    def waiting(self) -> list[Channel]:
        """Our callers in cti-hold's MusicOnHold, where another client may redirect them."""
        return [c for c in self.switch.channels.values()
                if c.context == "cti-hold" and c.app == "MusicOnHold" and c.name.endswith(";1")
                and not c.interrupted]

    def redirect_one(self) -> bool:
        waiting = self.waiting()
        if not waiting:
            return False
        ch = self.rng.choice(waiting)
        self.stats.redirects += 1
        if self.rng.random() < self.mix.to_extension:
            ext = self._phone()
            self.switch.ledger.foreign(ch, f"{site.INTERNAL},{ext}")
            self.switch.redirect(ch, site.INTERNAL, ext, 1)
            return True
        self.switch.ledger.foreign(ch, f"{site.VOICEMAIL},{VOICEMAIL_BOX}")
        self.switch.redirect(ch, site.VOICEMAIL, VOICEMAIL_BOX, 1)
        if self.rng.random() < self.mix.back_to_hold:
            self.switch.spawn(self._back_to_hold(ch, self.rng.uniform(0.5, 4.0)))
        return True

    async def _back_to_hold(self, ch: Channel, after_s: float) -> None:
        """After ``after_s`` (scaled) in voicemail, the other client sends the caller back to hold."""
        await asyncio.sleep(self.switch.scale(after_s))
        if not ch.hungup and ch.context == site.VOICEMAIL and ch.pending_redirect is None:
            self.stats.back_to_hold += 1
            self.switch.ledger.foreign(ch, "cti-hold,s")
            self.switch.redirect(ch, "cti-hold", "s", 1)
