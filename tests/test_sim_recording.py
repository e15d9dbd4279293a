"""MixMonitor files written by the simulator: format of the real v3-01 WAV, 44-byte header-only
files for unanswered offers and media-less callers, bridged duration, silence while muted."""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from pathlib import Path

from simulator import AsteriskSim, Caller, SimConfig, scenarios
from simulator.record import ScriptedAgi, Transcript, contract_script
from simulator.recording import Recording, wav_header

# the first 44 bytes of v3-01-answered-recorded.cti-<uuid>.wav, recorded by the real Asterisk 22
REAL_HEADER = (Path(__file__).parent / "fixtures" / "traces" / "v3-01-answered-recorded.wav-header").read_bytes()


def only_wav(d: Path) -> Path:
    files = list(d.iterdir())
    assert len(files) == 1 and files[0].name.startswith("cti-") and files[0].suffix == ".wav", files
    return files[0]


def samples(p: Path) -> list[int]:
    with wave.open(str(p)) as w:
        n = w.getnframes()
        return list(struct.unpack(f"<{n}h", w.readframes(n)))


def rms(xs: list[int]) -> float:
    return math.sqrt(sum(x * x for x in xs) / len(xs)) / 32768 if xs else 0.0


def bridged_seconds(ami: str, time_factor: float) -> float:
    """The caller's bridged time in a simulated transcript: BridgeEnter .. BridgeLeave (simulated s)."""
    msgs, cur, t = [], {}, 0.0
    for line in ami.splitlines():
        parts = line.split(" ", 2)
        if parts[0] != "<<":
            continue
        if len(parts) < 3:
            if cur:
                msgs.append((t, cur))
            cur = {}
            continue
        if not cur:
            t = float(parts[1])
        k, _, v = parts[2].partition(": ")
        cur.setdefault(k, v)
    enter = next(m for m in msgs if m[1].get("Event") == "BridgeEnter" and "callers" in m[1]["Channel"])
    leave = next(m for m in msgs if m[1].get("Event") == "BridgeLeave" and m[1]["Channel"] == enter[1]["Channel"])
    return (leave[0] - enter[0]) / time_factor


def same_format_as_real(p: Path) -> None:
    data = p.read_bytes()
    # everything but the two sizes is the real header: PCM, 1 channel, 8000 Hz, 16000 B/s, 16-bit
    assert data[:4] + data[8:40] == REAL_HEADER[:4] + REAL_HEADER[8:40]
    size, data_size = struct.unpack("<I", data[4:8])[0], struct.unpack("<I", data[40:44])[0]
    assert size == len(data) - 8 and data_size == len(data) - 44
    with wave.open(str(p)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getcomptype()) == (1, 8000, 2, "NONE")


def test_header_matches_the_real_file() -> None:
    assert wav_header(144320) == REAL_HEADER  # the real file: 72160 samples = 9.02 s


async def test_v3_01_bridged_time_with_silence_while_muted(tmp_path: Path) -> None:
    ami, _ = await scenarios.run("v3-01-answered-recorded", time_factor=0.05, record_dir=str(tmp_path))
    p = only_wav(tmp_path)
    same_format_as_real(p)
    s = samples(p)
    seconds, bridged = len(s) / 8000, bridged_seconds(ami, 0.05)
    print(f"v3-01: {p.stat().st_size} bytes, {seconds:.2f} s, bridged {bridged:.2f} s (real 144364 bytes, 9.02 s)")
    assert abs(seconds - bridged) < 0.5 and abs(seconds - 9.02) < 1.0
    assert len(s) % 160 == 0  # whole 20 ms frames
    sec = lambda a, b: s[int(a * 8000):int(b * 8000)]  # noqa: E731
    assert 0.08 < rms(sec(0.2, 2.8)) < 0.15 and 0.08 < rms(sec(6.3, 8.5)) < 0.15
    assert set(sec(3.3, 5.7)) == {0}  # MixMonitorMute both 1 .. 0: digital silence, the file keeps growing


async def test_v3_02_second_offer_overwrites_and_v3_05_stays_empty(tmp_path: Path) -> None:
    for name in ("v3-02-ring-no-answer-then-answered", "v3-05-privileges"):
        d = tmp_path / name
        ami, _ = await scenarios.run(name, time_factor=0.05, record_dir=str(d))
        p = only_wav(d)
        same_format_as_real(p)
        print(f"{name}: {p.stat().st_size} bytes")
        if name.startswith("v3-02"):  # the answered offer's 4.02 s, not the first offer's 44 bytes
            seconds = (p.stat().st_size - 44) / 16000
            assert abs(seconds - bridged_seconds(ami, 0.05)) < 0.5 and abs(seconds - 4.02) < 0.8
        else:  # Local/wait sends no media: header only, though bridged and muted
            assert p.stat().st_size == 44


async def test_unanswered_offer_leaves_a_44_byte_file(tmp_path: Path) -> None:
    script = contract_script("cid-9", "Local/1002@agent-phones", 2, "cti-cid-9.wav")

    agi = ScriptedAgi(Transcript(), script)
    port = await agi.start()
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=0.05, record_dir=str(tmp_path))) as sim:
        lid = await sim.place_call(Caller("5552345", "Heidi", playback=True))  # speech during the ring
        ch = await sim.wait_in_app(lid)
        sim.redirect(ch, "cti-agent", "1002", 1)
        for _ in range(300):
            if sim.record[lid].offers:
                break
            await asyncio.sleep(0.01)
        assert sim.record[lid].offers == [("1002", "NOANSWER")]
        assert ch.var("MIXMONITOR_FILENAME") == str(tmp_path / "cti-cid-9.wav")
        p = tmp_path / "cti-cid-9.wav"
        assert p.read_bytes() == wav_header(0)  # `b`: nothing unbridged, but the file exists
        sim.request_hangup(ch, 16)
        await sim.wait_ended(lid, 5)
        assert p.stat().st_size == 44
    await agi.stop()


def test_recording_frames_and_mute(tmp_path: Path) -> None:
    t = [0.0]
    flowing = [True]
    rec = Recording(tmp_path / "x.wav", lambda: flowing[0], time_factor=0.5, clock=lambda: t[0])
    assert (tmp_path / "x.wav").stat().st_size == 44
    t[0] = 0.5  # 1 simulated second
    rec.mute(True)
    t[0] = 1.0
    rec.mute(False)
    flowing[0] = False
    t[0] = 2.0
    rec.tick()  # no media: nothing written
    flowing[0] = True
    t[0] = 2.005  # 10 ms: less than a frame, kept for later
    rec.close()
    s = samples(tmp_path / "x.wav")
    assert len(s) == 16000 and set(s[8000:]) == {0} and rms(s[:8000]) > 0.1
