"""Tests for callcenter.settings: layering, validation errors, redaction."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from callcenter.settings import Settings, SettingsError, load_settings

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "cti.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cti.toml"
    p.write_text(text, encoding="utf-8")
    return p


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    p = write(tmp_path, text)
    with pytest.raises(SettingsError) as ei:
        load_settings(p, env=env or {})
    return str(ei.value), p


def test_defaults_load() -> None:
    s = load_settings(env={})
    assert s.ami.host == "127.0.0.1" and s.ami.port == 5038 and s.ami.username == "ctilp"
    assert s.ami.secret.get_secret_value() == "" and s.ami.auth == "plain"
    assert s.agi.port == 4573 and s.agi.max_sessions == 2000
    assert s.http.allowed_origins == [s.http.public_url] == ["http://127.0.0.1:8080"]
    assert s.database.url == "sqlite+aiosqlite:///var/cti.db"
    assert s.acd.default_queue == "support" and s.acd.ring_timeout_s == 15
    assert set(s.queues) == {"sales", "support"}
    assert s.agents == []
    assert s.log.level == "INFO" and s.log.json is True
    assert s.sim.time_factor == 0.05 and s.sim.agents == 10
    assert Settings() == s


def test_shipped_config_loads() -> None:
    s = load_settings(SHIPPED, env={})
    assert s.skills == ["sales", "support"]
    assert set(s.queues) == {"sales", "support"}
    assert s.queues["sales"].skills == ["sales"]
    assert [a.id for a in s.agents] == [str(i) for i in range(1001, 1011)]
    sales = [a for a in s.agents if "sales" in a.skills]
    support = [a for a in s.agents if "support" in a.skills]
    both = [a for a in s.agents if len(a.skills) == 2]
    assert len(sales) >= 5 and len(support) >= 5 and both
    assert all(a.password == "" for a in s.agents)
    assert s.ami.secret.get_secret_value() == "secret"


def test_env_override_wins() -> None:
    env = {
        "CTI_AMI_SECRET": "s3cr3t",
        "CTI_AMI_PORT": "6038",
        "CTI_DATABASE_URL": "sqlite+aiosqlite:///tmp/x.db",
        "CTI_HTTP_PUBLIC_URL": "https://cti.example.com",
        "CTI_LOG_LEVEL": "debug",
    }
    s = load_settings(SHIPPED, env=env)
    assert s.ami.secret.get_secret_value() == "s3cr3t"
    assert s.ami.port == 6038
    assert s.database.url == "sqlite+aiosqlite:///tmp/x.db"
    assert s.http.public_url == "https://cti.example.com"
    assert s.log.level == "DEBUG"
    # file layer still applies where env is silent
    assert len(s.agents) == 10


def test_env_public_url_drives_default_origins() -> None:
    s = load_settings(env={"CTI_HTTP_PUBLIC_URL": "https://cti.example.com"})
    assert s.http.allowed_origins == ["https://cti.example.com"]


@pytest.mark.parametrize(
    ("env", "var", "reason"),
    [
        ({"CTI_AMI_PORT": "abc"}, "CTI_AMI_PORT", "must be an integer"),
        ({"CTI_HTTP_PORT": "70000"}, "CTI_HTTP_PORT", "must be <= 65535"),
        ({"CTI_LOG_LEVEL": "LOUD"}, "CTI_LOG_LEVEL", "INFO"),
    ],
)
def test_bad_env_names_variable(env: dict[str, str], var: str, reason: str) -> None:
    with pytest.raises(SettingsError) as ei:
        load_settings(SHIPPED, env=env)
    assert var in str(ei.value) and reason in str(ei.value)


def test_settings_frozen() -> None:
    s = load_settings(env={})
    with pytest.raises(pydantic.ValidationError):
        s.ami.port = 1  # type: ignore[misc]


def test_unknown_key(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[ami]\nhost = "h"\nprot = 1\n')
    assert str(p) in msg and "ami.prot" in msg and "unknown key" in msg


def test_unknown_section(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, "[amii]\nport = 1\n")
    assert str(p) in msg and "amii" in msg and "unknown key" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[ami]\nport = "5038"\n')
    assert str(p) in msg and "ami.port" in msg and "wrong type" in msg


def test_range_error_in_queue(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[queues.sales]\nskills = ["sales"]\nring_timeout_s = 0\n')
    assert str(p) in msg and "queues.sales.ring_timeout_s" in msg and "must be > 0" in msg


def test_bad_auth_literal(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[ami]\nauth = "sha1"\n')
    assert str(p) in msg and "ami.auth" in msg and "md5" in msg


def test_unknown_queue_skill(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, 'skills = ["sales"]\n[queues.vip]\nskills = ["gold"]\n[acd]\ndefault_queue = "vip"\n')
    assert str(p) in msg and "queues.vip.skills[0]" in msg and "unknown skill 'gold'" in msg


def test_unknown_agent_skill(tmp_path: Path) -> None:
    msg, p = error_for(
        tmp_path,
        'skills = ["sales", "support"]\n'
        '[[agents]]\nid = "1001"\nname = "A"\nskills = { sales = 5, french = 3 }\n',
    )
    assert str(p) in msg and "agents[0].skills.french" in msg and "unknown skill" in msg


def test_agent_proficiency_range(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[[agents]]\nid = "1001"\nname = "A"\nskills = { sales = 11 }\n')
    assert str(p) in msg and "agents[0].skills.sales" in msg and "must be <= 10" in msg


def test_agent_id_digits(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[[agents]]\nid = "ab1"\nname = "A"\nskills = { sales = 1 }\n')
    assert str(p) in msg and "agents[0].id" in msg and "pattern" in msg


def test_duplicate_agent_id(tmp_path: Path) -> None:
    agents = "".join(
        f'[[agents]]\nid = "{i}"\nname = "A{i}"\nskills = {{ sales = 5 }}\n'
        for i in ("1001", "1002", "1003", "1002")
    )
    msg, p = error_for(tmp_path, agents)
    assert str(p) in msg and "agents[3].id" in msg and "duplicate agent id '1002'" in msg


def test_unknown_default_queue(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[acd]\ndefault_queue = "nope"\n')
    assert str(p) in msg and "acd.default_queue" in msg and "unknown queue" in msg


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    msg, p = error_for(tmp_path, '[ami]\nhost = "h"\nport = = 5\n')
    assert str(p) in msg and "TOML syntax error" in msg and "line 3" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "absent.toml", env={})


def test_redacted_hides_secret() -> None:
    s = load_settings(
        SHIPPED,
        env={"CTI_AMI_SECRET": "hunter2", "CTI_DATABASE_URL": "postgresql+asyncpg://cti:dbpw@db/cti"},
    )
    r = s.redacted()
    assert r["ami"]["secret"] == "***"
    assert r["database"]["url"] == "postgresql+asyncpg://cti:***@db/cti"
    text = repr(r) + repr(s) + str(s)
    assert "hunter2" not in text and "dbpw" not in repr(r)
    assert r["ami"]["port"] == 5038 and r["log"]["json"] is True
