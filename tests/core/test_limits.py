"""syn2seq_core.base.limits: one table of the ranges of user-given numbers, used by the command line, library
callers, the nodes' widgets and docs/limits.md; memory estimates refused above the available memory."""

import argparse
import ast
import sys
import types
from pathlib import Path

import pytest

from syn2seq_core import cli
from syn2seq_core.base import limits
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.base.limits import LIMITS

ROOT = Path(__file__).resolve().parents[2]
# bench forwards its options to the benchmark modules, which parse their own.
NOT_WIRED_HERE = {"bench"}


# --- the table -----------------------------------------------------------------------------------------

def test_every_range_is_well_formed():
    for key, r in LIMITS.items():
        assert r.name == key
        assert r.kind in (int, float), key
        assert r.lo < r.hi, key
        assert r.used_by and r.why, key
        if r.kind is int:
            assert isinstance(r.lo, int) and isinstance(r.hi, int), key


def test_the_ranges_the_issue_asks_for():
    assert (LIMITS["steps"].lo, LIMITS["steps"].hi) == (1, 1000)
    assert (LIMITS["transition_frames"].lo, LIMITS["transition_frames"].hi) == (0, 256)
    assert (LIMITS["mean_draws"].lo, LIMITS["mean_draws"].hi) == (1, 64)
    assert (LIMITS["seed"].lo, LIMITS["seed"].hi) == (0, 2**64 - 1)


def test_the_seed_range_is_what_torch_generator_accepts():
    import torch

    g = torch.Generator()
    g.manual_seed(LIMITS["seed"].lo)
    g.manual_seed(LIMITS["seed"].hi)
    with pytest.raises((RuntimeError, ValueError, OverflowError)):
        g.manual_seed(LIMITS["seed"].hi + 1)


def test_the_fps_range_is_what_the_video_writer_accepts():
    from syn2seq_core.io.video import _fps_fraction

    r = LIMITS["fps"]
    _fps_fraction(r.hi)
    with pytest.raises(Syn2SeqInputError):
        _fps_fraction(r.hi * 1.01)
    assert r.lo_open and r.lo == 0


def test_synthetic_ranges_agree_with_synthetic_config():
    from syn2seq_core.data.synthetic import SyntheticConfig

    ss = LIMITS["supersample"]
    SyntheticConfig(size=LIMITS["synthetic_size"].lo, supersample=ss.hi)
    with pytest.raises(Syn2SeqInputError):
        SyntheticConfig(supersample=ss.hi + 1)
    with pytest.raises(Syn2SeqInputError):
        SyntheticConfig(size=LIMITS["synthetic_size"].lo - 1)


# --- check() and arg() -----------------------------------------------------------------------------------

def test_check_returns_values_in_range_and_names_range_and_value_otherwise():
    assert limits.check("steps", 1) == 1
    assert limits.check("steps", 1000) == 1000
    assert limits.check("steps", 25.0) == 25 and isinstance(limits.check("steps", 25.0), int)
    assert limits.check("guidance_scale", 3) == 3.0
    with pytest.raises(Syn2SeqInputError) as e:
        limits.check("steps", 1_000_000_000)
    assert str(e.value) == "steps: expected an integer in [1, 1000], got 1000000000"
    assert (e.value.name, e.value.expected, e.value.found) == ("steps", "an integer in [1, 1000]", 1_000_000_000)
    with pytest.raises(Syn2SeqInputError, match=r"n_transition: expected an integer in \[0, 256\], got 257"):
        limits.check("transition_frames", 257, label="n_transition")


@pytest.mark.parametrize("name, value", [("steps", 0), ("steps", 2.5), ("steps", True), ("steps", "25"),
                                         ("steps", None), ("seed", -1), ("seed", 2**64), ("eta", float("nan")),
                                         ("eta", 1.0001), ("fps", 0.0), ("guidance_scale", float("inf"))])
def test_check_refuses(name, value):
    with pytest.raises(Syn2SeqInputError, match=rf"^{name}: expected (an integer|a number) in "):
        limits.check(name, value)


def test_check_accepts_numpy_and_torch_integers():
    import numpy as np
    import torch

    assert limits.check("steps", np.int64(7)) == 7
    assert limits.check("steps", torch.tensor(7)) == 7


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="steps"):
        limits.check("stepz", 3)


def test_arg_parses_and_refuses_with_the_range_and_the_value():
    parse = limits.arg("steps")
    assert parse("1") == 1 and parse("1000") == 1000
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer in \[1, 1000\], got 1000000000$"):
        parse("1000000000")
    with pytest.raises(argparse.ArgumentTypeError, match=r"got '2\.5'"):
        parse("2.5")
    fps = limits.arg("fps")
    assert fps("29.97") == pytest.approx(29.97)
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number in \(0, 1000\], got 0"):
        fps("0")


def test_option_puts_the_range_and_default_in_the_help():
    kw = limits.option("steps", "denoising steps", 25)
    assert kw["help"] == "denoising steps (1..1000, default 25)"
    assert kw["default"] == 25 and kw["type"]("3") == 3
    assert limits.option("transition_frames", "t", None, default_text="default: x")["help"] == "t (0..256, default: x)"
    with pytest.raises(Syn2SeqInputError):
        limits.option("steps", "a default out of range", 0)


def test_seed_span():
    top = LIMITS["seed"].hi
    assert limits.check_seed_span(top, 1) == top
    assert limits.check_seed_span(top - 7, 8) == top - 7
    with pytest.raises(Syn2SeqInputError, match=rf"\[0, {top - 7}\].*got {top - 6}"):
        limits.check_seed_span(top - 6, 8)


def test_devices():
    assert limits.check_device("cpu") == "cpu"
    with pytest.raises(Syn2SeqInputError, match="got 'gpu'"):
        limits.check_device("gpu")
    with pytest.raises(Syn2SeqInputError, match="device kinds"):
        limits.check_device("meta")
    with pytest.raises(Syn2SeqInputError, match="this machine has"):
        limits.check_device("cuda:99")
    with pytest.raises(argparse.ArgumentTypeError, match="got 'gpu'"):
        limits.device_arg("gpu")


# --- memory ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, text", [(0, "0 bytes"), (999, "999 bytes"), (1500, "1.5 kB"), (2_500_000, "2.5 MB"),
                                     (1.5e9, "1.5 GB"), (123e9, "123 GB"), (2e12, "2.0 TB")])
def test_format_bytes(n, text):
    assert limits.format_bytes(n) == text


def test_require_memory_refuses_an_estimate_over_the_available_memory(monkeypatch):
    monkeypatch.setattr(limits, "available_memory_bytes", lambda device=None: 1_000_000_000)
    limits.require_memory(999_000_000, "frames")
    with pytest.raises(Syn2SeqInputError) as e:
        limits.require_memory(48_000_000_000, "the exo video", "Read fewer frames")
    message = str(e.value)
    assert message.startswith("the exo video: expected at most 1.0 GB (the memory available on this machine now)")
    assert "got an estimated 48.0 GB" in message and message.endswith("Read fewer frames")


def test_require_memory_passes_when_the_machine_does_not_say(monkeypatch):
    monkeypatch.setattr(limits, "available_memory_bytes", lambda device=None: None)
    limits.require_memory(10**18, "anything")


def test_available_memory_reads_meminfo(tmp_path):
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       24683584 kB\nMemFree:  1 kB\nMemAvailable:   2000000 kB\n")
    assert limits._meminfo_available(str(fake)) == 2000000 * 1024
    assert limits._meminfo_available(str(tmp_path / "missing")) is None
    if sys.platform.startswith("linux"):
        found = limits.available_memory_bytes()
        assert isinstance(found, int) and found > 0


def test_available_memory_falls_back_to_psutil(monkeypatch):
    monkeypatch.setattr(limits, "_meminfo_available", lambda path="/proc/meminfo": None)
    fake = types.SimpleNamespace(virtual_memory=lambda: types.SimpleNamespace(available=123_456))
    monkeypatch.setitem(sys.modules, "psutil", fake)
    assert limits.available_memory_bytes() == 123_456
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed
    assert limits.available_memory_bytes() is None


def test_frames_bytes_and_the_render_estimate():
    assert limits.frames_bytes(10, 256, 256) == 10 * 3 * 256 * 256 * 4
    assert limits.frames_bytes(10, 256, 256, copies=2, bytes_per_value=1) == 10 * 3 * 256 * 256 * 2
    small = limits.synthetic_render_bytes(8, 16, 64, 2)
    assert small < 100e6  # the default render-synthetic batch: tens of MB
    assert limits.synthetic_render_bytes(8, 16, 4096, 2) > 50e9


# --- every numeric option and widget takes its range from the table ----------------------------------------

def _parsers():
    """(name, parser) of every command, and of every action of a command with actions ("cameras estimate")."""
    def walk(name, parser):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(f"{name} {sub_name}", sub)

    for name in cli.COMMANDS:
        if name in NOT_WIRED_HERE:
            continue
        parser = cli.build_parser([name])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        yield from walk(name, sub.choices[name])


def _limit_of(action) -> str | None:
    t = action.type
    return t.__name__ if t is not None and getattr(t, "__qualname__", "").startswith("arg.") else None


def _cli_uses():
    """{(command, "--opt"): limit name} from the table's used_by entries ("a / b --opt")."""
    found = {}
    for r in LIMITS.values():
        for use in r.used_by:
            head, _, opt = use.rpartition(" ")
            if opt.startswith("-"):
                for command in head.split(" / "):
                    found[(command, opt)] = r.name
    return found


def test_every_numeric_option_has_a_range_from_the_table_and_is_listed_there():
    uses = _cli_uses()
    seen = set()
    for command, parser in _parsers():
        for action in parser._actions:
            if action.type in (int, float):
                assert action.choices, f"{command} {action.option_strings}: a number without a range in limits.py"
                continue
            name = _limit_of(action)
            if name is None:
                continue
            key = (command, "/".join(action.option_strings))
            assert uses.get(key) == name, f"{key} uses limit {name!r} but the table lists {uses.get(key)!r}"
            seen.add(key)
            if action.default is not None:
                limits.check(name, action.default)
    listed = {k for k in uses if k[0].split()[0] not in NOT_WIRED_HERE}  # "bench train": a bench target
    assert listed == seen, f"listed in limits.py but not an option: {sorted(listed - seen)}"


def _node_widgets():
    """{(node_id, input): limit name} from the io.Int/io.Float inputs in nodes/*.py; fails on literals."""
    found = {}
    for path in sorted((ROOT / "nodes").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            bound = {}  # local name -> limit name, from `x = ...LIMITS["key"]` and `a, b = (L["k"], ...)`
            for node in ast.walk(fn):
                if not isinstance(node, ast.Assign):
                    continue
                for target in node.targets:
                    names = target.elts if isinstance(target, ast.Tuple) else [target]
                    values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                    if isinstance(node.value, ast.GeneratorExp):  # (limits[k] for k in ("a", "b"))
                        values = [ast.Constant(c.value) for c in node.value.generators[0].iter.elts]
                    for n, v in zip(names, values, strict=False):
                        key = v.slice if isinstance(v, ast.Subscript) else v
                        if isinstance(n, ast.Name) and isinstance(key, ast.Constant) and key.value in LIMITS:
                            bound[n.id] = key.value
            node_id = None
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "Schema":
                    kw = {k.arg: k.value for k in call.keywords}
                    node_id = kw["node_id"].value if isinstance(kw.get("node_id"), ast.Constant) else None
            for call in ast.walk(fn):
                f = call.func if isinstance(call, ast.Call) else None
                if not (isinstance(f, ast.Attribute) and f.attr == "Input" and isinstance(f.value, ast.Attribute)
                        and f.value.attr in ("Int", "Float")):
                    continue
                kw = {k.arg: k.value for k in call.keywords}
                where = f"{path.name}: {node_id}.{call.args[0].value}"
                lo, hi = kw.get("min"), kw.get("max")
                assert isinstance(lo, ast.Attribute) and lo.attr == "lo" and isinstance(lo.value, ast.Name), where
                assert isinstance(hi, ast.Attribute) and hi.attr == "hi" and isinstance(hi.value, ast.Name), where
                assert lo.value.id == hi.value.id and lo.value.id in bound, f"{where}: min/max not from LIMITS"
                name = bound[lo.value.id]
                if isinstance(kw.get("default"), ast.Constant):
                    limits.check(name, kw["default"].value, label=where)
                found[(node_id, call.args[0].value)] = name
    return found


def test_node_widgets_take_min_and_max_from_the_table_and_are_listed_there():
    widgets = _node_widgets()
    assert len(widgets) >= 15
    listed = {}
    for r in LIMITS.values():
        for use in r.used_by:
            node, dot, widget = use.partition(".")
            if dot and node.startswith("Syn2Seq"):
                listed[(node, widget)] = r.name
    assert widgets == listed


# --- docs ------------------------------------------------------------------------------------------------

def test_docs_limits_page_is_generated_from_the_table():
    page = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    assert page == limits._docs_page(), "run `python -m syn2seq_core.base.limits > docs/limits.md`"
    for r in LIMITS.values():
        assert f"| `{r.name}` | " in page


def test_cli_checks_render_synthetic_memory_before_running(monkeypatch, capsys):
    from syn2seq_core.commands import render_synthetic

    monkeypatch.setattr(limits, "available_memory_bytes", lambda device=None: 2_000_000_000)
    monkeypatch.setattr(render_synthetic, "run", lambda args: pytest.fail("ran despite the estimate"))
    assert cli.main(["render-synthetic", "--out", "unused", "--takes", "8", "--size", "4096"]) == 2
    err = capsys.readouterr().err
    assert "expected at most 2.0 GB" in err and "got an estimated" in err and "--batch" in err
    assert "Traceback" not in err
