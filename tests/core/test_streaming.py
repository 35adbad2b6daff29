"""Long takes in bounded memory, and result sets that never mix runs.

Streaming must not change what is generated: a sequence built without pixels and read window by window gives
the same frames as the whole sequence in memory. A run writes its result set into a temporary folder and moves
it into place at the end: a run that fails or is killed half-way leaves an earlier result folder byte-identical.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from syn2seq_core.base import conventions as C
from syn2seq_core.io.atomic import building_dir, check_result_dir, result_dir
from syn2seq_core.benchmarks.memory import write_long_take
from syn2seq_core.cli import main
from syn2seq_core.data.takes import load_take
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.generation.takes import generate_take, iter_take, run_take
from syn2seq_core.geometry.cameras import Cameras
from syn2seq_core.metrics.frames import FrameScores, evaluate_frames
from syn2seq_core.generation.pipeline import load_model
from syn2seq_core.generation.sequence import build_sequence
from syn2seq_core.io.video import VideoWriter, probe_video

from .test_pipeline import write_random_model

SIZE = 16
MODEL = {"preset": "tiny", "height": SIZE, "width": SIZE, "patch_size": 4, "dim": 32, "depth": 1, "heads": 2,
         "max_frames": 6}
DATA = {"size": SIZE, "exo_frames": 2, "ego_frames": 2, "transition_frames": 2}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_random_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", MODEL, DATA, noise=0.05)


@pytest.fixture(scope="module")
def long_take(tmp_path_factory):
    return write_long_take(tmp_path_factory.mktemp("takes") / "long", 23, 32)


def result_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- streaming generation equals the in-memory one -----------------------------------------------------
@pytest.mark.parametrize("n_src, n_tgt", [(2, 2), (9, 17)])  # within the window / a long rollout
def test_frameless_sequence_streams_the_same_frames(model_path, long_take, n_src, n_tgt):
    model = load_model(model_path)
    take = load_take(long_take)
    frames, exo = take.read_view("exo", size=(SIZE, SIZE), stop=n_src)
    ego = take.view_cameras("ego", size=(SIZE, SIZE), stop=n_tgt)
    whole = build_sequence(exo, ego, exo_frames=frames, n_transition=2)
    expected = model.generate(whole, steps=3, seed=4)
    bare = build_sequence(exo, ego, size=(SIZE, SIZE), n_transition=2)
    assert bare.frames.stride() == (0, 0, 0, 0)  # no memory for the frames
    reads = []

    def read(start, end):
        reads.append((start, end))
        return whole.frames[start:end]

    got = dict()
    for index, part in model.generate_stream(bare, read_frames=read, steps=3, seed=4):
        assert all(i not in got for i in index)
        got.update(zip(index, part))
    generated = torch.nonzero(whole.context_mask == C.MASK_GENERATE).flatten().tolist()
    assert sorted(got) == generated
    assert torch.equal(torch.stack([got[i] for i in generated]), expected.frames[generated])
    assert all(end - start <= model.window for start, end in reads)  # read per window, never whole


def test_rollout_keeps_only_what_later_windows_read(model_path):
    # A 60-frame target view: generated frames leave as they are finished; the stream holds one window.
    model = load_model(model_path)
    cams = build_sequence(*exo_ego_tracks(60), size=(SIZE, SIZE), n_transition=2)
    seen, last = 0, -1
    for index, part in model.generate_stream(cams, read_frames=lambda s, e: torch.rand(e - s, 3, SIZE, SIZE),
                                             steps=1):
        assert index[0] > last and len(index) <= model.window
        last, seen = index[-1], seen + len(index)
    assert seen == len(cams) - 1


def exo_ego_tracks(n):
    """A static exo camera and an ``n``-pose ego track."""
    K = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 1, n)
    return Cameras(torch.eye(4)[None], K, SIZE, SIZE), Cameras(c2w, K, SIZE, SIZE)


def test_run_take_streams_a_long_take_like_the_in_memory_path(model_path, long_take, tmp_path):
    model = load_model(model_path)
    take = load_take(long_take)
    done = run_take(take, model, "exo2ego", tmp_path / "out", steps=2, seed=1, chunk=5)
    result = generate_take(take, model, "exo2ego", steps=2, seed=1)
    report = done["report"]
    assert report["generated_frames"] == 23
    expected = evaluate_frames(result.generated, result.target)
    assert report["metrics"]["psnr"]["per_frame"] == pytest.approx(expected["psnr"]["per_frame"], abs=1e-9)
    assert report["metrics"]["ssim"]["mean"] == pytest.approx(expected["ssim"]["mean"], abs=1e-9)
    for key, frames in (("video", 23), ("side_by_side", 23)):
        assert probe_video(done["paths"][key]).frames == frames
    assert probe_video(done["paths"]["video"]).size == (32, 32)  # the ego video's own size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left beside it


def test_iter_take_blocks_hold_the_shorter_view(model_path, long_take):
    model = load_model(model_path)
    blocks = list(iter_take(load_take(long_take), model, "exo2ego", steps=1, chunk=10))
    assert [b.start for b in blocks] == [0, 10, 20] and [b.scored for b in blocks] == [10, 10, 3]
    assert all(b.source.shape == b.generated.shape == b.target.shape for b in blocks)


def test_mean_of_a_long_take_is_refused_before_any_work(model_path, long_take):
    with pytest.raises(Syn2SeqInputError, match="--mean.*window"):
        iter_take(load_take(long_take), load_model(model_path), "exo2ego", with_mean=True)


def test_frame_scores_merge_chunks_like_one_call():
    torch.manual_seed(0)
    pred, target = torch.rand(7, 3, 16, 16), torch.rand(7, 3, 16, 16)
    scores = FrameScores()
    for s in (slice(0, 3), slice(3, 4), slice(4, 7)):
        scores.add(pred[s], target[s])
    whole, merged = evaluate_frames(pred, target), scores.report()
    assert merged["frames"] == 7 and merged["lpips_alex"] == whole["lpips_alex"]
    for name in ("psnr", "ssim"):
        assert merged[name]["per_frame"] == pytest.approx(whole[name]["per_frame"], abs=1e-6)
        assert merged[name]["mean"] == pytest.approx(whole[name]["mean"], abs=1e-6)


def test_video_writer_abort_leaves_the_destination(tmp_path):
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"earlier")
    writer = VideoWriter(dest, fps=8)
    writer.write(torch.rand(4, 3, 16, 16))
    writer.abort()
    assert dest.read_bytes() == b"earlier" and list(tmp_path.iterdir()) == [dest]
    with VideoWriter(dest, fps=8) as writer:
        for _ in range(3):
            writer.write(torch.rand(2, 3, 16, 16))
    assert probe_video(dest).frames == 6 and writer.info.frames == 6


# --- result sets: the old set or the new one, never a mix -------------------------------------------------
def test_failed_run_leaves_the_earlier_result_byte_identical(model_path, long_take, tmp_path, monkeypatch):
    out = tmp_path / "out"
    take, model = load_take(long_take), load_model(model_path)
    run_take(take, model, "exo2ego", out, steps=1)
    before = result_files(out)
    calls = {"n": 0}
    real = VideoWriter.write

    def failing(self, chunk):
        calls["n"] += 1
        if calls["n"] == 4:  # the second block: some files of the new set are half-written
            raise OSError(28, "No space left on device")
        return real(self, chunk)

    monkeypatch.setattr(VideoWriter, "write", failing)
    with pytest.raises(OSError, match="No space"):
        run_take(take, model, "exo2ego", out, steps=1, seed=9, chunk=8)
    assert result_files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no partial folder left


def test_killed_run_leaves_the_earlier_result_byte_identical(model_path, long_take, tmp_path):
    out = tmp_path / "out"
    cmd = ["exo2ego", "--take", str(long_take), "--model", str(model_path), "--out", str(out), "--steps", "1"]
    assert main(cmd) == 0
    before = result_files(out)
    # The same command in a process that kills itself (SIGKILL, no clean-up) at its 4th chunk written.
    script = ("import os, signal, sys\n"
              "from syn2seq_core.io import video as video_io\n"
              "real, n = video_io.VideoWriter.write, [0]\n"
              "def write(self, chunk):\n"
              "    n[0] += 1\n"
              "    if n[0] == 4: os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return real(self, chunk)\n"
              "video_io.VideoWriter.write = write\n"
              "from syn2seq_core.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", script, *cmd, "--seed", "5"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert result_files(out) == before
    assert any(p.name.startswith(".out.partial-") for p in tmp_path.iterdir())  # what the kill left
    # The next run cleans up after the dead one and replaces the set as a whole.
    assert main(cmd + ["--seed", "5"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert result_files(out).keys() == before.keys() and result_files(out) != before


def test_output_folder_is_checked_before_any_work(tmp_path, monkeypatch, capsys):
    import syn2seq_core.generation.pipeline as pipeline

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(pipeline, "load_model", no_model)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["exo2ego", "--take", str(tmp_path), "--out", str(blocker / "out")]) == 2
    assert "--out" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["exo2ego", "--take", str(tmp_path), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and (mine / "notes.txt").read_text() == "keep me"


def test_building_dir_puts_back_a_folder_displaced_by_a_killed_swap(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "metrics.json").write_text("old")
    # A process killed between "earlier folder moved aside" and "new folder moved in" (the two-rename path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.rename(dest, tmp_path / f".out.old-{dead.pid}-abcd")
    with building_dir(dest) as tmp:  # the next run first restores it, then swaps as usual
        assert (dest / "metrics.json").read_text() == "old"
        (tmp / "metrics.json").write_text("new")
    assert (dest / "metrics.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_result_dir_refuses_a_file_and_accepts_an_earlier_result(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(Syn2SeqInputError, match="is a file"):
        check_result_dir(tmp_path / "f")
    with result_dir(tmp_path / "r") as tmp:
        (tmp / "metrics.json").write_text("1")
    with result_dir(tmp_path / "r") as tmp:
        (tmp / "side_by_side.mp4").write_text("2")
    assert result_files(tmp_path / "r") == {"side_by_side.mp4": b"2"}  # the whole set replaced


def test_bench_memory_measures_each_command_in_its_own_process(model_path, capsys):
    assert main(["bench", "memory", "--frames", "3", "5", "--size", "16", "--steps", "1", "--model",
                 str(model_path), "--commands", "exo2ego", "interpolate"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()
            and line.split()[0] in ("exo2ego", "interpolate")}
    assert set(rows) == {"exo2ego", "interpolate"}
    for row in rows.values():
        low, high, ratio = float(row[1]), float(row[2]), float(row[3])
        assert low > 50 and high > 50 and ratio == pytest.approx(max(low, high) / min(low, high), abs=0.02)
