"""MixMonitor files as Asterisk 22 writes them (F9, v3-01/02/05): RIFF/WAVE PCM, mono, 8000 Hz,
16-bit signed, in 20 ms frames.

* The file is created (a 44-byte header, ``data`` size 0) when MixMonitor starts; a later
  MixMonitor on the same name truncates it (v3-02: the second offer overwrites the first).
* Audio is written only while frames flow: while the caller's far half sends media (the traces'
  ``Local/talk@callers`` plays a prompt; two Local halves in ``Wait()`` send nothing, so such a
  recording stays at 44 bytes, v3-05) and, with the ``b`` option, only while the channel is bridged.
* ``MixMonitorMute`` (``both``/``read``) writes digital silence: the file keeps growing (v3-01).
* The simulator has no real speech: a flowing span is a steady 440 Hz tone (RMS about 0.1 of
  full scale, like the traces' speech).

Time is simulated time (wall time / ``time_factor``). The header's sizes are kept current after
every write, so the file is valid at any moment.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable
from pathlib import Path

RATE = 8000
FRAME = 160  # samples in 20 ms
AMPLITUDE = 0.15 * 32767  # sine: RMS = 0.106 of full scale


def wav_header(data_bytes: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


class Recording:
    """One MixMonitor: ``tick()`` before every change of what flows (bridge, media, mute)."""

    def __init__(self, path: str | Path, flowing: Callable[[], bool], time_factor: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.flowing = flowing
        self.time_factor = max(time_factor, 1e-9)
        self.clock = clock
        self.muted = False
        self.data_bytes = 0
        self._phase = 0
        self._pending = 0.0  # simulated seconds not yet written (less than one frame)
        self._last = clock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")  # noqa: SIM115 - kept open for the recording's life
        self._f.write(wav_header(0))
        self._f.flush()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def tick(self) -> None:
        """Account for the time since the last tick with the state that held during it."""
        if self.closed:
            return
        now = self.clock()
        span, self._last = (now - self._last) / self.time_factor, now
        if not self.flowing():
            self._pending = 0.0
            return
        self._pending += span
        frames = int(self._pending * RATE / FRAME + 1e-9)
        if frames <= 0:
            return
        self._pending -= frames * FRAME / RATE
        n = frames * FRAME
        if self.muted:
            pcm = bytes(2 * n)
        else:
            p = self._phase
            pcm = struct.pack(f"<{n}h", *(int(AMPLITUDE * math.sin(2 * math.pi * 440 * (p + i) / RATE))
                                          for i in range(n)))
            self._phase = (p + n) % RATE
        self._f.write(pcm)
        self.data_bytes += len(pcm)
        self._f.seek(0)
        self._f.write(wav_header(self.data_bytes))
        self._f.seek(0, 2)
        self._f.flush()

    def mute(self, on: bool) -> None:
        self.tick()
        self.muted = on

    def close(self) -> None:
        if self.closed:
            return
        self.tick()
        self._f.close()
