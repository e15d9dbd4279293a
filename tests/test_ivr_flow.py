"""Flow loading and graph validation: each error names the file, the key path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import FlowError, FlowErrors
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
    "edit,line",
    [
        (lambda s: s.replace('goto = "sales"', 'goto = "nowhere"'), ["node menu: options.1: unknown node 'nowhere'",
                                                                       "node sales: unreachable from start 'menu'"]),
        (lambda s: s.replace('start = "menu"', 'start = "x"'), "start: unknown node 'x'"),
        (lambda s: s.replace('start = "menu"\n', ""), "start: missing"),
        (lambda s: s.replace('prompt = "beep"\n', ""), "node menu: prompt: missing"),
        (lambda s: s.replace("[nodes.menu.options.2]", '[nodes.menu.options."12"]'),
         "node menu: options.12: bad digits '12' (0-9, *, #; at most max_digits = 1 long)"),
        (lambda s: s.replace("[nodes.menu.options.2]", "[nodes.menu.options.x]"),
         "node menu: options.x: bad digits 'x' (0-9, *, #; at most max_digits = 1 long)"),
        (lambda s: s.replace('skills = ["sales"]', "skills = []"),
         "node sales: skills: must be a non-empty list of skills, or a table of skill = minimum level (1..10)"),
        (lambda s: s.replace('skills = ["sales"]\n', ""), "node sales: skills: missing"),
        (lambda s: s + '[nodes.orphan]\nkind = "hangup"\n', "node orphan: unreachable from start 'menu'"),
        (lambda s: s.replace('kind = "menu"', 'kind = "menuu"'), ("node menu: kind: unknown node type 'menuu' "
         "(one of play, menu, collect, lookup, hours, branch, set, queue, callback, voicemail, transfer, say, "
         "hangup, goto)")),
        (lambda s: s.replace('on_timeout = "support"', 'on_timeout = "support"\ntimout_ms = 5'),
         "node menu: timout_ms: unknown field for this node type"),
        (lambda s: s.replace("[nodes.menu]", "[nodes.menu]\nretries = -1"),
         "node menu: retries: must be an integer in 0..20, got -1"),
    ],
)
def test_errors_name_file_node_field_reason(tmp_path: Path, edit: object, line: str | list[str]) -> None:
    p = write(tmp_path, edit(GOOD))  # type: ignore[operator]
    lines = [line] if isinstance(line, str) else line
    with pytest.raises(FlowErrors) as ei:
        load_flow(p)
    assert [e.line() for e in ei.value.errors] == [f"{p}: {x}" for x in lines]
    assert str(ei.value).startswith(f"{p}: {lines[0]}")


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
    p = write(tmp_path, text)
    with pytest.raises(FlowErrors) as ei:
        load_flow(p)
    assert [e.line() for e in ei.value.errors] == [
        f"{p}: node a: no way out: no queue, hangup, transfer, goto or callback node is reachable",
        f"{p}: node b: no way out: no queue, hangup, transfer, goto or callback node is reachable",
        f"{p}: node b: found: loop that never waits for input: a -> b -> a",
        f"{p}: node b: not_found: loop that never waits for input: a -> b -> a",
        f"{p}: node b: several: loop that never waits for input: a -> b -> a",
    ]


def test_plain_cycle_is_unbounded_even_with_an_exit_elsewhere(tmp_path: Path) -> None:
    text = """
start = "a"
[nodes.a]
kind = "play"
prompt = "hello-world"
next = "b"
[nodes.b]
kind = "lookup"
found = "q"
not_found = "a"
[nodes.q]
kind = "queue"
queue = "vip"
skills = ["vip"]
"""
    with pytest.raises(FlowError) as ei:
        load_flow(write(tmp_path, text))
    assert ei.value.key == "nodes.b.not_found" and "a -> b -> a" in ei.value.reason


def test_missing_prompt_against_known_prompts(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as ei:
        load_flow(write(tmp_path, GOOD), known_prompts={"hello-world"})
    assert ei.value.key == "nodes.menu.prompt"
    assert ei.value.reason == "prompt 'beep' not found in the sound directories"


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
