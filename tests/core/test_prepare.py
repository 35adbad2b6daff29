"""`syn2seq prepare`: tiny render-synthetic takes become webdataset-compatible tar shards (blend and ideal
transitions), deterministic to the byte, resumable after kill -9 without redoing finished shards, with
per-take failures skipped and counted."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from syn2seq_core.cli import main as cli
from syn2seq_core.data import shards

try:  # the tiny Wan pipeline of the Wan backend's tests
    from .test_wan_backend import STEPS as WAN_STEPS, tiny_wan  # noqa: F401
except ImportError as e:
    WAN_STEPS, _WAN_MISSING = 2, str(e)

    @pytest.fixture
    def tiny_wan():
        pytest.skip(f"the Wan backend's tests do not import here: {_WAN_MISSING}")

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--size", "32", "--exo-frames", "4", "--ego-frames", "4", "--transition-frames", "2", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("takes") / "takes"
    assert cli(["render-synthetic", "--out", str(root), "--takes", "3", "--size", "32", "--exo-frames", "4",
                "--ego-frames", "4"]) == 0
    return root


def prepare(takes, out, *extra):
    return cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY, *extra])


def manifest(out):
    return json.loads((Path(out) / shards.MANIFEST_NAME).read_text())


def shard_bytes(out):
    return {p.name: p.read_bytes() for p in sorted(Path(out).glob("shard-*.tar"))}


@pytest.mark.parametrize("transition", ["blend", "ideal"])
def test_prepare_writes_readable_deterministic_shards(takes, tmp_path, transition):
    import webdataset as wds

    from syn2seq_core.data.synthetic import SyntheticConfig, render_takes
    from syn2seq_core.geometry.slerp import interpolate_cameras

    out = tmp_path / "out"
    assert prepare(takes, out, "--transition", transition, "--takes-per-shard", "2") == 0
    doc = manifest(out)
    assert doc["complete"] and doc["settings"]["transition"] == transition
    assert [e["file"] for e in doc["shards"]] == ["shard-000000.tar", "shard-000001.tar"]
    assert [e["samples"] for e in doc["shards"]] == [2, 1]
    for entry in doc["shards"]:
        path = out / entry["file"]
        assert shards.file_sha256(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
        with tarfile.open(path) as tar:  # fixed headers: nothing of the machine, the user or the time
            for info in tar:
                assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)
    # webdataset streams the shards as they are: one sample per key, all members decoded
    samples = list(wds.WebDataset([str(p) for p in sorted(out.glob("shard-*.tar"))], shardshuffle=False).decode())
    assert [s["json"]["id"] for s in samples] == [f"take_{i:05d}/clip0" for i in range(3)]
    assert samples[0]["exo.npy"].shape == (4, 32, 32, 3) and samples[0]["exo.npy"].dtype.name == "uint8"
    assert samples[0]["transition.npy"].shape == (2, 32, 32, 3)
    assert samples[0]["exo_depth.npy"].dtype.name == "float16"
    # our reader: frames, cameras (the SLERP transition cameras included), depth
    reader = shards.SampleReader(shards.read_manifest(out / shards.MANIFEST_NAME))
    s = reader[0]
    assert s.meta["roles"] == [0] * 4 + [1] * 2 + [2] * 4
    torch.testing.assert_close(s.transition_cameras.c2w, interpolate_cameras(s.exo_cameras, s.ego_cameras, 2).c2w)
    truth = render_takes([0], SyntheticConfig(size=32, exo_frames=4, ego_frames=4), transition=2, depth=True)
    torch.testing.assert_close(s.exo_cameras.c2w.float(), truth.exo_c2w[0], atol=1e-6, rtol=0)
    assert (s.exo - truth.exo_frames[0]).abs().mean() < 0.05  # through H.264 and back
    assert s.exo_depth.shape == (4, 64, 64)
    if transition == "ideal":  # rendered along the SLERP path: the world's own in-betweens, to uint8
        assert (s.transition - truth.transition_frames[0]).abs().max() <= 1 / 255 + 1e-6
    else:
        from syn2seq_core.interpolation.base import interpolate

        expected = interpolate(s.exo[-1], s.ego[0], 2, backend="blend")
        assert (s.transition - expected).abs().max() <= 0.5 / 255 + 1e-6
    # a second run elsewhere writes the same bytes
    again = tmp_path / "again"
    assert prepare(takes, again, "--transition", transition, "--takes-per-shard", "2") == 0
    assert shard_bytes(again) == shard_bytes(out)
    assert [e["sha256"] for e in manifest(again)["shards"]] == [e["sha256"] for e in doc["shards"]]


def test_clips_are_windows_of_a_take(takes, tmp_path):
    out = tmp_path / "out"
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), "--size", "16", "--exo-frames", "2",
                "--ego-frames", "2", "--transition-frames", "1", "--transition", "blend", "--clips", "2",
                "--no-progress"]) == 0
    reader = shards.SampleReader(shards.read_manifest(out))
    assert len(reader) == 6
    metas = [reader[j].meta for j in range(2)]
    assert [m["exo_frames"] for m in metas] == [[0, 1], [2, 3]]
    assert [m["ego_frames"] for m in metas] == [[0, 1], [2, 3]]  # the synchronous ego frames
    assert reader[1].exo.shape == (2, 3, 16, 16)


def test_kill_9_loses_only_the_shard_in_progress_and_a_rerun_is_byte_identical(takes, tmp_path):
    out, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = [sys.executable, "-m", "syn2seq_core", "prepare", "--takes", str(takes), "--out", str(out), *TINY,
           "--transition", "blend", "--takes-per-shard", "1"]
    proc = subprocess.Popen(cmd, env={**ENV, shards.SLEEP_ENV: "60"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        m = out / shards.MANIFEST_NAME
        try:
            if m.exists() and len(manifest(out)["shards"]) >= 1:
                break
        except ValueError:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    doc = manifest(out)
    assert not doc["complete"] and [e["file"] for e in doc["shards"]] == ["shard-000000.tar"]
    first = out / "shard-000000.tar"
    before = first.stat()
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 shards (2 written, 1 already done), 3 samples, 0 takes failed" in r.stdout
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert manifest(out)["complete"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file is left behind"
    assert prepare(takes, clean, "--transition", "blend", "--takes-per-shard", "1") == 0
    assert shard_bytes(out) == shard_bytes(clean)
    # a run on a finished folder writes nothing
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    assert prepare(takes, out, "--transition", "blend", "--takes-per-shard", "1", "--verify") == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")} == stamps


def test_two_workers_write_the_shards_of_one(takes, tmp_path):
    assert prepare(takes, tmp_path / "one", "--transition", "blend", "--takes-per-shard", "1") == 0
    assert prepare(takes, tmp_path / "two", "--transition", "blend", "--takes-per-shard", "1", "--workers", "2") == 0
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one")
    assert manifest(tmp_path / "two")["shards"] == manifest(tmp_path / "one")["shards"]


def test_a_failing_take_is_skipped_logged_and_counted(takes, tmp_path, capsys):
    root = tmp_path / "takes"
    shutil.copytree(takes, root)
    (root / "take_00001" / "exo.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    doc = json.loads((root / "take_00002" / "take.json").read_text())
    del doc["meta"]  # no recorded seed: no ideal in-betweens for this take
    (root / "take_00002" / "take.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert prepare(root, out, "--transition", "ideal") == 0
    printed = capsys.readouterr().out
    assert "1 samples, 2 takes failed" in printed and shards.FAILURES_NAME in printed
    failures = [json.loads(line) for line in (out / shards.FAILURES_NAME).read_text().splitlines()]
    assert [f["take"] for f in failures] == ["take_00001", "take_00002"]
    assert "ideal" in failures[1]["error"] and "render-synthetic" in failures[1]["error"]
    assert manifest(out)["shards"][0]["failed"] == [{k: f[k] for k in ("take", "error")} for f in failures]
    assert len(shards.read_manifest(out)) == 1


def test_other_settings_on_the_same_folder_are_refused(takes, tmp_path, capsys):
    out = tmp_path / "out"
    assert prepare(takes, out, "--transition", "blend") == 0
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), "--size", "16", "--no-progress"]) == 2
    assert "same settings and takes" in capsys.readouterr().err
    assert cli(["prepare", "--takes", str(takes), "--out", str(tmp_path / "x"), "--transition", "morph",
                "--no-progress"]) == 2
    assert "one of" in capsys.readouterr().err


def test_an_index_selects_takes_and_the_egoexo4d_index_is_optional(takes, tmp_path, capsys):
    index = tmp_path / "index.csv"
    index.write_text("take,category,split\ntake_00000,Cooking,train\ntake_00002,Bike,test\n")
    out = tmp_path / "out"
    assert cli(["prepare", "--index", str(index), "--root", str(takes), "--split", "train", "--out", str(out), *TINY,
                "--transition", "blend"]) == 0
    assert manifest(out)["takes"] == ["take_00000"]
    try:
        import syn2seq_core.data.egoexo4d_index  # noqa: F401
    except ImportError:
        assert cli(["prepare", "--egoexo4d-index", str(index), "--root", str(takes), "--out", str(tmp_path / "e"),
                    "--no-progress"]) == 2
        assert "egoexo4d_index" in capsys.readouterr().err


def test_egoexo4d_index_takes_become_samples(tmp_path):
    """An Ego-Exo4D release layout (the procedural fixture) -> index-egoexo4d -> prepare --egoexo4d-index: the
    take loader hook (load_indexed_take) plugs the indexer in; --split and --category select entries."""
    pytest.importorskip("syn2seq_core.data.egoexo4d_index")
    pytest.importorskip("syn2seq_core.data.egoexo4d_fixture")
    root, index, out = tmp_path / "release", tmp_path / "index.jsonl", tmp_path / "out"
    assert cli(["render-synthetic", "--layout", "egoexo4d", "--out", str(root), "--takes", "2", "--size", "32",
                "--exo-frames", "4", "--ego-frames", "4"]) == 0
    assert cli(["index-egoexo4d", str(root), "--out", str(index)]) == 0
    from syn2seq_core.data.egoexo4d_index import read_egoexo4d_index

    entries = read_egoexo4d_index(index)
    train = [e for e in entries if e.split == "train"]
    assert cli(["prepare", "--egoexo4d-index", str(index), "--root", str(root), "--split", "train", "--category",
                train[0].category, "--out", str(out), "--size", "16", "--exo-frames", "2", "--ego-frames", "2",
                "--transition-frames", "1", "--transition", "blend", "--no-progress"]) == 0
    doc = manifest(out)
    assert doc["takes"] == [e.take_name for e in train] and not doc["shards"][0]["failed"]
    sample = shards.SampleReader(shards.read_manifest(out))[0]
    assert sample.exo.shape == (2, 3, 16, 16) and sample.meta["category"] == train[0].category
    # The same index given as a plain --index (eval reads it that way too) goes through the same loader.
    assert cli(["prepare", "--index", str(index), "--root", str(root), "--split", "train", "--out", str(tmp_path / "b"),
                "--size", "16", "--exo-frames", "2", "--ego-frames", "2", "--transition-frames", "1", "--transition",
                "blend", "--no-progress"]) == 0
    assert manifest(tmp_path / "b")["takes"] == doc["takes"] and not manifest(tmp_path / "b")["shards"][0]["failed"]



def test_wan_transitions_from_a_tiny_wan_on_the_given_device_are_reproducible(takes, tmp_path, tiny_wan):
    """--transition wan: the backend gets its options (a local tiny random-weight Wan FLF2V pipeline, built by
    diffusers from a config) and the worker's --devices entry; a re-run writes the same bytes (a fixed seed)."""
    options = json.dumps({"model": str(tiny_wan[0]), "steps": WAN_STEPS, "progress_bar": False})
    args = ["--size", "16", "--exo-frames", "2", "--ego-frames", "2", "--transition-frames", "2", "--transition",
            "wan", "--interpolator-options", options, "--devices", "cpu", "--no-progress"]
    for out in ("a", "b"):
        assert cli(["prepare", "--takes", str(takes), "--out", str(tmp_path / out), *args]) == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    sample = shards.SampleReader(shards.read_manifest(tmp_path / "a"))[0]
    assert sample.transition.shape == (2, 3, 16, 16) and sample.meta["transition"] == "wan"
    assert manifest(tmp_path / "a")["settings"]["interpolator_options"] == options
