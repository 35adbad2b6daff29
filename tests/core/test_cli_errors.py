"""The command line's failure modes: a number out of range is refused up front (exit 2, one line naming the
option, the range and the value); an unexpected error ends with one line naming the log file that holds
the traceback (exit 1), or shows the traceback with --debug."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syn2seq_core import cli
from syn2seq_core.base import limits
from syn2seq_core.commands import selfcheck
from syn2seq_core.base.errors import Syn2SeqInputError

ROOT = Path(__file__).resolve().parents[2]
TOP = 2**64 - 1

GEN = ["--take", "t", "--out", "o"]
RS = ["--out", "o", "--takes", "2"]
IMG = ["--first", "a.png", "--last", "b.png", "--out", "o"]

# (argv, option as argparse names it, range as printed, value as printed)
OUT_OF_RANGE = [
    (["exo2ego", *GEN, "--steps", "1000000000"], "--steps", "[1, 1000]", "1000000000"),
    (["exo2ego", *GEN, "--steps", "0"], "--steps", "[1, 1000]", "0"),
    (["ego2exo", *GEN, "--transition-frames", "100000000"], "--transition-frames", "[0, 256]", "100000000"),
    (["exo2ego", *GEN, "--mean-draws", "65"], "--mean-draws", "[1, 64]", "65"),
    (["exo2ego", *GEN, "--seed", str(TOP + 1)], "--seed", f"[0, {TOP}]", str(TOP + 1)),
    (["exo2ego", *GEN, "--seed", "-1"], "--seed", f"[0, {TOP}]", "-1"),
    (["exo2ego", *GEN, "--guidance-scale", "21"], "--guidance-scale", "[0.0, 20.0]", "21"),
    (["exo2ego", *GEN, "--eta", "1.5"], "--eta", "[0.0, 1.0]", "1.5"),
    (["demo", "--steps", "5000"], "--steps", "[1, 1000]", "5000"),
    (["eval", "--takes", "d", "--limit", "0"], "--limit", "[1, 100000]", "0"),
    (["eval", "--takes", "d", "--mean-draws", "0"], "--mean-draws", "[1, 64]", "0"),
    (["render-synthetic", "--out", "o", "--takes", "0"], "--takes", "[1, 100000]", "0"),
    (["render-synthetic", *RS, "--size", "3"], "--size", "[4, 4096]", "3"),
    (["render-synthetic", *RS, "--exo-frames", "5000"], "--exo-frames", "[1, 4096]", "5000"),
    (["render-synthetic", *RS, "--ego-frames", "0"], "--ego-frames", "[1, 4096]", "0"),
    (["render-synthetic", *RS, "--supersample", "9"], "--supersample", "[1, 8]", "9"),
    (["render-synthetic", *RS, "--batch", "0"], "--batch", "[1, 1024]", "0"),
    (["render-synthetic", *RS, "--threads", "-1"], "--threads", "[0, 1024]", "-1"),
    (["render-synthetic", *RS, "--fps", "0"], "--fps", "(0, 1000]", "0"),
    (["render-synthetic", *RS, "--seed", "-5"], "--seed", f"[0, {TOP}]", "-5"),
    (["interpolate", *IMG, "-n", "1025"], "-n/--frames", "[0, 1024]", "1025"),
    (["interpolate", *IMG, "-n", "1", "--fps", "5000"], "--fps", "(0, 1000]", "5000"),
    (["convert-dfot", "a.ckpt", "b.safetensors", "--size", "4"], "--size", "[8, 4096]", "4"),
    (["convert-dfot", "a.ckpt", "b.safetensors", "--max-frames", "0"], "--max-frames", "[1, 256]", "0"),
    (["download", "dfot-re10k", "--timeout", "0"], "--timeout", "(0, 3600]", "0"),
    (["train", "--config", "c.toml", "--max-steps", "0"], "--max-steps", "[1, 1000000000]", "0"),
    (["train", "--config", "c.toml", "--minutes", "-1"], "--minutes", "(0, 525600]", "-1"),
]


@pytest.mark.parametrize("argv, option, interval, value", OUT_OF_RANGE, ids=[" ".join(c[0]) for c in OUT_OF_RANGE])
def test_out_of_range_exits_2_naming_option_range_and_value(argv, option, interval, value, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"syn2seq {argv[0]}: error: argument {option}: expected " in err
    assert f" in {interval}, got {value}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, option, interval, value", OUT_OF_RANGE[:1])
def test_out_of_range_in_a_real_process(argv, option, interval, value):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(cli.DEBUG_ENV, None)
    proc = subprocess.run([sys.executable, "-m", "syn2seq_core", *argv], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"syn2seq exo2ego: error: argument --steps: expected an integer in {interval}, got {value}")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_boundary_values_parse():
    argv = ["exo2ego", *GEN, "--steps", "1000", "--transition-frames", "0", "--mean-draws", "64", "--seed",
            str(TOP), "--guidance-scale", "20", "--eta", "1", "--device", "cpu"]
    args = cli.build_parser(argv).parse_args(argv)
    assert (args.steps, args.transition_frames, args.mean_draws, args.seed) == (1000, 0, 64, TOP)
    assert (args.guidance_scale, args.eta, args.device) == (20.0, 1.0, "cpu")
    args = cli.build_parser(["exo2ego"]).parse_args(["exo2ego", *GEN])
    assert (args.steps, args.transition_frames, args.seed, args.eta) == (None, None, 0, None)  # steps, eta: the model's


def test_an_unavailable_device_is_refused_up_front(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as e:
        cli.main(["exo2ego", *GEN, "--device", "cuda"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --device: expected a device this machine has (cpu), got 'cuda'" in err


@pytest.mark.parametrize("argv, hint", [
    (["exo2ego", *GEN, "--mean", "--seed", str(TOP)], f"[0, {TOP - 7}]"),
    (["render-synthetic", "--out", "o", "--takes", "10", "--seed", str(TOP - 5)], f"[0, {TOP - 9}]"),
])
def test_seed_spans_are_checked_before_the_command_runs(argv, hint, monkeypatch, capsys):
    module = cli._load(argv[0])
    monkeypatch.setattr(module, "run", lambda args: pytest.fail("ran despite the seed"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"syn2seq {argv[0]}: error: --seed: expected an integer in {hint}" in err
    assert "Traceback" not in err


# --- unexpected failures -------------------------------------------------------------------------------

@pytest.fixture
def state(tmp_path, monkeypatch):
    """XDG_STATE_HOME in tmp_path (and the temp dir too), no SYN2SEQ_DEBUG; returns the log folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "state"))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path / "state" / "syn2seq" / "logs"


def _fail_with(monkeypatch, exc: BaseException):
    def run(args):
        def deep_inside_the_command():
            raise exc
        deep_inside_the_command()

    monkeypatch.setattr(selfcheck, "run", run)


def test_unexpected_error_is_one_line_naming_the_log_that_holds_the_traceback(state, monkeypatch, capsys):
    _fail_with(monkeypatch, RuntimeError("boom: the first line\nthe second line"))
    assert cli.main(["selfcheck", "--quiet"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    logs = list(state.glob("syn2seq-selfcheck-*.log"))
    assert len(logs) == 1
    assert lines[0] == f"syn2seq selfcheck: failed: RuntimeError: boom: the first line (full traceback: {logs[0]})"
    text = logs[0].read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "deep_inside_the_command" in text
    assert "the second line" in text and "command: syn2seq selfcheck --quiet" in text
    assert f"-{os.getpid()}.log" in logs[0].name
    assert not [p for p in state.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


@pytest.mark.parametrize("how", ["before", "after", "env"])
def test_debug_prints_the_traceback_instead(how, state, monkeypatch, capsys):
    _fail_with(monkeypatch, ValueError("bad thing"))
    argv = {"before": ["--debug", "selfcheck"], "after": ["selfcheck", "--debug"], "env": ["selfcheck"]}[how]
    if how == "env":
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "deep_inside_the_command" in err
    assert err.strip().splitlines()[-1] == "syn2seq selfcheck: failed: ValueError: bad thing"
    assert not state.exists()


def test_without_debug_there_is_no_traceback_on_stderr(state, monkeypatch, capsys):
    _fail_with(monkeypatch, KeyError("x"))
    assert cli.main(["selfcheck"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_log_falls_back_to_the_temp_folder(tmp_path, state, monkeypatch, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    monkeypatch.setenv("LOCALAPPDATA", str(blocker))
    _fail_with(monkeypatch, RuntimeError("boom"))
    assert cli.main(["selfcheck"]) == 1
    err = capsys.readouterr().err
    logs = list((tmp_path / "tmp").glob("syn2seq-logs-*/syn2seq-selfcheck-*.log"))
    assert len(logs) == 1 and f"(full traceback: {logs[0]})" in err
    assert "boom" in logs[0].read_text(encoding="utf-8")


def test_traceback_goes_to_stderr_when_no_log_can_be_written(state, monkeypatch, capsys):
    def nowhere(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("syn2seq_core.io.atomic.write_text_atomic", nowhere)
    _fail_with(monkeypatch, RuntimeError("boom"))
    assert cli.main(["selfcheck"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("syn2seq selfcheck: failed: RuntimeError: boom (the traceback "
                                                   "above could not be saved: OSError")


@pytest.mark.parametrize("exc, says", [
    (MemoryError(), "out of memory (MemoryError)"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 4000000000000 bytes."), "out of memory (RuntimeError: [enforce fail"),
    (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 20 GiB"),
     "out of memory (OutOfMemoryError: CUDA out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.mp4"),
     "no space left on the disk: free some or write elsewhere '/data/out.mp4' (OSError: [Errno"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"),
     "permission denied: check who owns the path, or write elsewhere '/root/x' (PermissionError"),
])
def test_memory_and_disk_failures_say_so(exc, says, state, monkeypatch, capsys):
    _fail_with(monkeypatch, exc)
    assert cli.main(["selfcheck"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"syn2seq selfcheck: failed: {says}"), err
    assert "(full traceback: " in err and len(err.strip().splitlines()) == 1


def test_input_errors_stay_exit_2_and_interrupts_130(state, monkeypatch, capsys):
    _fail_with(monkeypatch, Syn2SeqInputError("--take", "a take folder", "'x'"))
    assert cli.main(["selfcheck"]) == 2
    assert capsys.readouterr().err == "syn2seq selfcheck: error: --take: expected a take folder, got 'x'\n"
    _fail_with(monkeypatch, KeyboardInterrupt())
    assert cli.main(["selfcheck"]) == 130
    assert capsys.readouterr().err == "syn2seq selfcheck: interrupted\n"
    assert not state.exists()


def test_system_exit_passes_through(state, monkeypatch):
    _fail_with(monkeypatch, SystemExit(3))
    with pytest.raises(SystemExit) as e:
        cli.main(["selfcheck"])
    assert e.value.code == 3


def test_a_command_that_cannot_be_imported_fails_in_one_line(state, monkeypatch, capsys):
    def broken(name):
        raise ImportError("No module named 'kornia'")

    monkeypatch.setattr(cli, "_load", broken)
    assert cli.main(["selfcheck"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("syn2seq selfcheck: failed: ImportError: No module named 'kornia' (full traceback: ")


def test_memory_check_of_render_synthetic_names_both_numbers(state, monkeypatch, capsys):
    from syn2seq_core.commands import render_synthetic

    monkeypatch.setattr(limits, "available_memory_bytes", lambda device=None: 1_500_000_000)
    monkeypatch.setattr(render_synthetic, "run", lambda args: pytest.fail("ran despite the estimate"))
    assert cli.main(["render-synthetic", "--out", "o", "--takes", "2", "--size", "2048", "--supersample", "4"]) == 2
    err = capsys.readouterr().err
    need = limits.format_bytes(limits.synthetic_render_bytes(2, 16, 2048, 4))
    assert err == (f"syn2seq render-synthetic: error: one batch of takes: expected at most 1.5 GB (the memory "
                   f"available on this machine now), got an estimated {need}. 2 takes of 16 frames at 2048x2048, "
                   "supersample 4: lower --batch, --size or --supersample\n")
