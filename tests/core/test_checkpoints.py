"""Training checkpoints: the last two good ones are kept, a damaged latest one falls back to the previous
with a warning naming it, none readable is a clear error, a checkpoint that does not read back replaces
nothing, a crash at any point of the rotation leaves a good one, and the metrics log holds each step once
after a resume. (kill -9 of a real training process: tests/core/test_train.py.)"""

import json
import os
import warnings

import pytest
import torch

from syn2seq_core.training import checkpoints as T
from syn2seq_core.training.loop import _trim_log
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.training.checkpoints import (CHECKPOINT_NAME, LOG_NAME, PREVIOUS_CHECKPOINT_NAME, initial_weights,
                                               load_checkpoint)
from syn2seq_core.training.config import load_config
from syn2seq_core.training.loop import train

from .test_train import read_log, write_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 4-step run with checkpoints every 2 steps: checkpoint.pt at step 4, checkpoint.prev.pt at 2."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = load_config(write_config(tmp, steps=4, every=2))
    train(cfg, tmp / "run", progress=False)
    return cfg, tmp / "run"


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run folder (tests damage its files)."""
    import shutil

    cfg, src = trained
    shutil.copytree(src, tmp_path / "run")
    return cfg, tmp_path / "run"


def steps_of(out):
    return {name: torch.load(out / name, weights_only=True)["step"] for name in (CHECKPOINT_NAME,
                                                                                   PREVIOUS_CHECKPOINT_NAME)}


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "not a zip":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
    elif how == "bit flip":  # inside the tensor data: torch.load alone would not notice
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif how == "missing keys":
        torch.save({"step": 4, "config": "{}"}, path)
    elif how == "wrong types":
        state = torch.load(path, weights_only=True)
        torch.save({**state, "step": "4"}, path)
    else:
        raise ValueError(how)


PROBLEMS = {"truncated": "truncated or corrupt", "empty": "empty file", "not a zip": "not a PyTorch checkpoint",
            "bit flip": "corrupt", "missing keys": "no elapsed, model, ema, optimizer",
            "wrong types": "'step' is a str, expected int"}


def test_the_last_two_checkpoints_are_kept(run):
    _, out = run
    assert steps_of(out) == {CHECKPOINT_NAME: 4, PREVIOUS_CHECKPOINT_NAME: 2}
    assert not list(out.glob(".*"))  # no temporary or link file left behind


@pytest.mark.parametrize("how", list(PROBLEMS))
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(run, how):
    _, out = run
    damage(out / CHECKPOINT_NAME, how)
    with pytest.warns(UserWarning) as caught:
        state = load_checkpoint(out)
    assert state["step"] == 2
    message = str(caught[0].message)
    assert str(out / CHECKPOINT_NAME) in message and PROBLEMS[how] in message and PREVIOUS_CHECKPOINT_NAME in message


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_training_resumes_from_the_previous_checkpoint_and_logs_each_step_once(run, how):
    cfg, out = run
    damage(out / CHECKPOINT_NAME, how)
    with pytest.warns(UserWarning, match=f"{CHECKPOINT_NAME}: .*using the previous checkpoint"):
        summary = train(cfg, out, progress=False)
    assert summary["step"] == 4
    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4]  # steps 3, 4 were redone, and logged once
    assert steps_of(out) == {CHECKPOINT_NAME: 4, PREVIOUS_CHECKPOINT_NAME: 2}  # the damaged file is gone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(out)["step"] == 4


def test_the_resumed_run_equals_an_uninterrupted_one(run, trained):
    cfg, out = run
    damage(out / CHECKPOINT_NAME, "truncated")
    with pytest.warns(UserWarning):
        train(cfg, out, progress=False)
    a, b = load_checkpoint(trained[1]), load_checkpoint(out)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0)


def test_no_readable_checkpoint_is_a_clear_error_naming_each_file(run):
    cfg, out = run
    damage(out / CHECKPOINT_NAME, "truncated")
    damage(out / PREVIOUS_CHECKPOINT_NAME, "empty")
    for attempt in (lambda: load_checkpoint(out), lambda: train(cfg, out, progress=False)):
        with pytest.raises(Syn2SeqInputError) as e:
            attempt()
        text = str(e.value)
        assert text.startswith(f"{out}: expected a readable training checkpoint")
        assert f"{CHECKPOINT_NAME}: truncated or corrupt" in text
        assert f"{PREVIOUS_CHECKPOINT_NAME}: an empty file (0 bytes)" in text
        assert "to start the run over from step 0" in text
        assert e.value.__context__ is None  # no PytorchStreamReader / EOFError underneath


def test_a_missing_latest_checkpoint_falls_back_with_a_warning(run):
    _, out = run
    (out / CHECKPOINT_NAME).unlink()
    with pytest.warns(UserWarning, match=f"{CHECKPOINT_NAME}: missing"):
        assert load_checkpoint(out)["step"] == 2
    (out / PREVIOUS_CHECKPOINT_NAME).unlink()
    assert load_checkpoint(out) is None  # a folder without checkpoints starts from step 0


def test_init_from_a_damaged_checkpoint_is_a_clear_error(run):
    _, out = run
    damage(out / CHECKPOINT_NAME, "truncated")
    with pytest.raises(Syn2SeqInputError, match=rf"init_from: expected a readable training checkpoint, got "
                                                rf".*{CHECKPOINT_NAME}: truncated or corrupt"):
        initial_weights(out / CHECKPOINT_NAME)
    with pytest.warns(UserWarning, match="using the previous checkpoint"):  # a run folder falls back
        assert set(initial_weights(out)) == set(load_checkpoint(out)["model"])
    damage(out / PREVIOUS_CHECKPOINT_NAME, "not a zip")
    with pytest.raises(Syn2SeqInputError, match=rf"init_from {out}: .*{PREVIOUS_CHECKPOINT_NAME}: not a PyTorch"):
        initial_weights(out)


def test_a_checkpoint_that_does_not_read_back_replaces_nothing(run, monkeypatch):
    _, out = run
    before = {n: (out / n).read_bytes() for n in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME)}
    state = load_checkpoint(out)

    def garbage_save(obj, f, *args, **kwargs):  # a write that "succeeds" but leaves junk (a bad disk, a full one)
        f.write(b"PK\x03\x04 not really a checkpoint")

    monkeypatch.setattr(torch, "save", garbage_save)
    with pytest.raises(RuntimeError, match=rf"{CHECKPOINT_NAME}: the checkpoint of step 6 did not read back after "
                                           rf"writing \(truncated or corrupt .*kept {CHECKPOINT_NAME}, "
                                           rf"{PREVIOUS_CHECKPOINT_NAME}"):
        T._write_checkpoint(out, {**state, "step": 6})
    assert {n: (out / n).read_bytes() for n in before} == before
    assert not list(out.glob(".*"))  # the bad temporary file is removed


def test_a_rerun_of_a_finished_run_keeps_the_older_previous_checkpoint(run):
    cfg, out = run
    train(cfg, out, progress=False)  # nothing left to train: it rewrites step 4
    assert steps_of(out) == {CHECKPOINT_NAME: 4, PREVIOUS_CHECKPOINT_NAME: 2}


def test_a_damaged_current_checkpoint_is_not_kept_as_the_previous(run):
    _, out = run
    state = torch.load(out / PREVIOUS_CHECKPOINT_NAME, weights_only=True)
    damage(out / CHECKPOINT_NAME, "truncated")
    T._write_checkpoint(out, {**state, "step": 6})
    assert steps_of(out) == {CHECKPOINT_NAME: 6, PREVIOUS_CHECKPOINT_NAME: 2}


class Crash(BaseException):
    """Stands in for a kill at one point of the rotation."""


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_crash_at_any_point_of_the_rotation_leaves_a_good_checkpoint(trained, tmp_path, monkeypatch, hard_links):
    import shutil

    real = {"link": os.link, "replace": os.replace}
    state = load_checkpoint(trained[1])
    point = 0
    while True:  # crash at the 1st, 2nd, ... link/rename of writing step 6 over (current 4, previous 2)
        point += 1
        out = tmp_path / f"crash{point}"
        shutil.copytree(trained[1], out)
        calls = []

        def fs_call(name, calls=calls, point=point):
            def call(*args, **kwargs):
                calls.append(name)
                if len(calls) == point:
                    raise Crash
                if name == "link" and not hard_links:  # a file system without them (FAT, some network ones)
                    raise OSError("hard links not supported")
                return real[name](*args, **kwargs)
            return call

        monkeypatch.setattr(os, "link", fs_call("link"))
        monkeypatch.setattr(os, "replace", fs_call("replace"))
        try:
            T._write_checkpoint(out, {**state, "step": 6})
            crashed = False
        except Crash:
            crashed = True
        monkeypatch.setattr(os, "link", real["link"])
        monkeypatch.setattr(os, "replace", real["replace"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # without hard links there is a moment without checkpoint.pt
            assert load_checkpoint(out)["step"] in (4, 6)
        if not crashed:
            break
        T._write_checkpoint(out, {**state, "step": 6})  # the next write completes the interrupted one
        assert steps_of(out) == {CHECKPOINT_NAME: 6, PREVIOUS_CHECKPOINT_NAME: 4}
    assert point - 1 == 3  # the link and the two renames of the rotation, each interrupted once
    assert steps_of(out) == {CHECKPOINT_NAME: 6, PREVIOUS_CHECKPOINT_NAME: 4}


def test_resume_drops_logged_steps_after_the_checkpoint_and_a_torn_line(tmp_path):
    cfg = load_config(write_config(tmp_path, steps=6, every=2))
    out = tmp_path / "run"
    train(cfg, out, max_steps=4, progress=False)
    # As if killed after logging steps 5 and 6 (the checkpoint is still at 4), in mid-write of step 7's record.
    with open(out / LOG_NAME, "a") as log:
        log.write(json.dumps({"step": 5, "loss": -1.0}) + "\n" + json.dumps({"step": 6, "loss": -1.0}) + "\n")
        log.write('{"step": 7, "lo')
    train(cfg, out, progress=False)
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] > 0 for r in log)  # the stale records are gone, the redone steps logged


def test_the_log_is_not_rewritten_when_nothing_is_dropped(run):
    _, out = run
    inode = (out / LOG_NAME).stat().st_ino
    assert _trim_log(out / LOG_NAME, 4) == (0, 0)
    assert (out / LOG_NAME).stat().st_ino == inode
    assert _trim_log(out / LOG_NAME, 2) == (2, 0)
    assert [r["step"] for r in read_log(out)] == [1, 2]


def test_the_command_reports_a_fallback_as_one_line(run):
    """``syn2seq train`` resuming past a damaged checkpoint says so in the pack's one-line form
    (``syn2seq train: warning: ...``, as its ``error:`` and ``failed:`` lines), not as a Python UserWarning
    with a file name, line number and source line."""
    import subprocess
    import sys

    from .test_train import ENV

    cfg, out = run
    damage(out / CHECKPOINT_NAME, "truncated")
    config = out.parent / "c.toml"
    config.write_text(json.dumps(json.loads(cfg.to_json())))
    config = config.rename(config.with_suffix(".json"))
    r = subprocess.run([sys.executable, "-m", "syn2seq_core", "train", "--config", str(config), "--out", str(out),
                        "--no-progress"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if CHECKPOINT_NAME in ln and "previous" in ln]
    assert lines == [f"syn2seq train: warning: {out / CHECKPOINT_NAME}: truncated or corrupt "
                     + lines[0].split("truncated or corrupt ", 1)[1]], r.stderr
    assert "using the previous checkpoint checkpoint.prev.pt (step 2) instead" in lines[0]
    assert "UserWarning" not in r.stderr and "warnings.warn" not in r.stderr
