"""Flow loading and graph validation: each error names the file, the key path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import FlowError
from ivr.flow import MenuNode, QueueNode, load_flow, load_flows

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
start = "menu"
[nodes.menu]
kind = "menu"
prompt = "beep"
on_timeout = "support"
on_invalid = "menu"
[nodes.menu.options.1]
goto = "sales"
[nodes.menu.options.2]
goto = "support"
[nodes.sales]
kind = "queue"
queue = "sales"
skills = ["sales"]
[nodes.support]
kind = "queue"
queue = "support"
skills = ["support"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "f.toml"
    p.write_text(text)
    return p


def test_shipped_main_flow_loads() -> None:
    flows = load_flows(ROOT / "config" / "ivr")
    main = flows["main"]
    assert main.start == "greeting"
    menu = main.nodes["menu"]
    assert isinstance(menu, MenuNode) and menu.options == {"1": "sales", "2": "support"} and menu.retries == 2
    q = main.nodes[menu.on_timeout]
    assert isinstance(q, QueueNode) and q.queue == "support" and q.skills == ("support",)


def test_good_flow(tmp_path: Path) -> None:
    assert set(load_flow(write(tmp_path, GOOD)).nodes) == {"menu", "sales", "support"}


@pytest.mark.parametrize(
    "edit,key,reason",
    [
        (lambda s: s.replace('goto = "sales"', 'goto = "nowhere"'), "nodes.menu.options.1.goto", "unknown node"),
        (lambda s: s.replace('start = "menu"', 'start = "x"'), "start", "unknown node"),
        (lambda s: s.replace('start = "menu"\n', ""), "start", "missing"),
        (lambda s: s.replace('prompt = "beep"\n', ""), "nodes.menu.prompt", "missing"),
        (lambda s: s.replace("[nodes.menu.options.2]", '[nodes.menu.options."12"]'), "nodes.menu.options.12",
         "bad digit key"),
        (lambda s: s.replace("[nodes.menu.options.2]", "[nodes.menu.options.x]"), "nodes.menu.options.x",
         "bad digit key"),
        (lambda s: s.replace('skills = ["sales"]', "skills = []"), "nodes.sales.skills", "at least one skill"),
        (lambda s: s.replace('skills = ["sales"]\n', ""), "nodes.sales.skills", "at least one skill"),
        (lambda s: s + '[nodes.orphan]\nkind = "hangup"\n', "nodes.orphan", "unreachable"),
        (lambda s: s.replace('kind = "menu"', 'kind = "menuu"'), "nodes.menu.kind", "unknown node kind"),
        (lambda s: s.replace('on_timeout = "support"', 'on_timeout = "support"\ntimout_ms = 5'), "nodes.menu.timout_ms",
         "unknown key"),
        (lambda s: s.replace("[nodes.menu]", "[nodes.menu]\nretries = -1"), "nodes.menu.retries", "integer"),
    ],
)
def test_errors_name_file_key_reason(tmp_path: Path, edit: object, key: str, reason: str) -> None:
    p = write(tmp_path, edit(GOOD))  # type: ignore[operator]
    with pytest.raises(FlowError) as ei:
        load_flow(p)
    err = ei.value
    assert (err.file, err.key) == (str(p), key)
    assert reason in err.reason
    assert str(p) in str(err) and key in str(err) and reason in str(err)


def test_loop_without_exit(tmp_path: Path) -> None:
    text = """
start = "a"
[nodes.a]
kind = "play"
prompt = "hello-world"
next = "b"
[nodes.b]
kind = "lookup"
next = "a"
"""
    with pytest.raises(FlowError) as ei:
        load_flow(write(tmp_path, text))
    assert "loop without an exit" in ei.value.reason and ei.value.key.startswith("nodes.")


def test_plain_cycle_is_unbounded_even_with_an_exit_elsewhere(tmp_path: Path) -> None:
    text = """
start = "a"
[nodes.a]
kind = "play"
prompt = "hello-world"
next = "b"
[nodes.b]
kind = "lookup"
next = "a"
if_tier = { key = "q" }
[nodes.q]
kind = "queue"
queue = "vip"
skills = ["vip"]
"""
    with pytest.raises(FlowError) as ei:
        load_flow(write(tmp_path, text))
    assert ei.value.key == "nodes.b.next" and "a -> b -> a" in ei.value.reason


def test_missing_prompt_against_known_prompts(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as ei:
        load_flow(write(tmp_path, GOOD), known_prompts={"hello-world"})
    assert ei.value.key == "nodes.menu.prompt" and "missing prompt 'beep'" in ei.value.reason


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="invalid TOML"):
        load_flow(write(tmp_path, "start = "))
    with pytest.raises(FlowError, match="cannot read"):
        load_flow(tmp_path / "nope.toml")


def test_a_missing_or_empty_flows_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="IVR flows directory not found"):
        load_flows(tmp_path / "nope")
    with pytest.raises(FlowError, match=r"no IVR flow \(\*.toml\)"):
        load_flows(tmp_path)


def test_flows_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    import os

    from callcenter.settings import load_settings

    s = load_settings(ROOT / "config" / "cti.toml", env={})
    assert Path(s.ivr.flows_dir) == (ROOT / "config" / "ivr").resolve()
    here = os.getcwd()
    os.chdir(tmp_path)  # from anywhere, the same flows
    try:
        assert set(load_flows(load_settings(ROOT / "config" / "cti.toml", env={}).ivr.flows_dir)) >= {"main"}
    finally:
        os.chdir(here)
