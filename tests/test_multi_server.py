"""Several Asterisk servers: one AMI client and call tracker each, call ids namespaced by
server, FastAGI sessions told apart by the address they come from, Redirects sent to the
server that holds the channel. Two simulators on 127.0.0.1 and 127.0.0.2, real sockets."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from callcenter.cli import run_simulation
from callcenter.settings import SettingsError, load_settings

CONFIG = Path(__file__).resolve().parent.parent / "config" / "cti.toml"


def test_server_names_must_be_unique_and_secrets_come_from_their_own_variable(tmp_path: Path) -> None:
    base = CONFIG.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(base + '\n[[ami_servers]]\nname = "default"\nhost = "10.0.0.2"\n')
    with pytest.raises(SettingsError) as e:
        load_settings(bad, env={})
    assert e.value.key == "ami_servers[0].name" and "duplicate Asterisk server name 'default'" in str(e.value)
    good = tmp_path / "good.toml"
    good.write_text(base + '\n[[ami_servers]]\nname = "west-1"\nhost = "10.0.0.2"\n')
    s = load_settings(good, env={"CTI_AMI_SECRET_WEST_1": "s3cret"})
    assert [a.name for a in s.asterisks] == ["default", "west-1"]
    assert s.ami_servers[0].secret.get_secret_value() == "s3cret"
    assert s.ami_servers[0].agi_peer_hosts() == frozenset({"10.0.0.2"})
    assert s.redacted()["ami_servers"][0]["secret"] == "***"
    odd = tmp_path / "odd.toml"
    odd.write_text(base + '\n[[ami_servers]]\nname = "a/b"\n')
    with pytest.raises(SettingsError) as e:
        load_settings(odd, env={})
    assert e.value.key == "ami_servers[0].name"


@pytest.mark.parametrize(("extra", "key", "reason"), [
    ('name = "west-1"\nhost = "10.0.0.2"\n[[ami_servers]]\nname = "west_1"\nhost = "10.0.0.3"\n',
     "ami_servers[1].name", "same secret variable CTI_AMI_SECRET_WEST_1"),
    ('name = "again"\nhost = "127.0.0.1"\nport = 5038\n', "ami_servers[0].host", "tracked twice"),
    ('name = "dns"\nhost = "pbx2.example.com"\n', "ami_servers[0].host", "not an IP address"),
    ('name = "p"\nhost = "10.0.0.2"\nagi_peers = ["127.0.0.1"]\n', "ami_servers[0].agi_peers",
     "could not be told apart"),
])
def test_several_servers_must_be_told_apart(tmp_path: Path, extra: str, key: str, reason: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(CONFIG.read_text() + "\n[[ami_servers]]\n" + extra)
    with pytest.raises(SettingsError) as e:
        load_settings(f, env={})
    assert e.value.key == key and reason in str(e.value), str(e.value)


@pytest.mark.parametrize("drops", [0, 4])
async def test_two_servers_end_to_end(tmp_path: Path, drops: int) -> None:
    db = tmp_path / "two.db"
    cap: dict[str, object] = {}
    res = await run_simulation(load_settings(CONFIG), calls=40, rate=20, agents=6, db=str(db),
                               servers=2, ami_drops=drops, capture=cap)
    assert res["asterisk_servers"] == 2 and res["calls"] == 40
    assert res["consistent"], res["problems"]
    assert res["call_logs"] == 40
    if drops:
        assert res["ami_reconnects"] >= drops
    con = sqlite3.connect(db)
    rows = con.execute("select call_id, server, outcome, agent_id from calls").fetchall()
    assert Counter(r[1] for r in rows) == {"default": 20, "sim2": 20}
    assert all(r[0].startswith(r[1] + "/") for r in rows)  # namespaced ids
    answered = Counter(r[1] for r in rows if r[2] == "answered")
    assert answered["default"] > 0 and answered["sim2"] > 0, answered  # Redirects reached both servers
    if not drops:
        # channel names repeat across servers (their counters both start at 0): a Redirect sent
        # to the wrong server would move that server's caller there, and its offer would be stale
        stale = [(r.linkedid, o) for r in cap["records"] for o in r.offers if o[1] == "NODEVICE"]  # type: ignore[attr-defined]
        assert stale == []
