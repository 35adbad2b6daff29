"""`syn2seq prepare` on many processes (issue 33.1): torchrun ranks and Slurm array tasks (simulated by their
environment variables, an array starting at 1) each write their fixed share of the shards (shard i by process
i % N), and the folder ends byte for byte as one process leaves it: shards, entry files, manifest and
failures.jsonl. Processes take different branches: uneven shares, a failed take in one share, rank 0 (or the
last array task) writes the manifest while the others do not, and a process's start-up cleanup leaves another's
half-written shard alone."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syn2seq_core.cli import main as cli
from syn2seq_core.data import shards
from syn2seq_core.base.errors import Syn2SeqInputError

pytestmark = pytest.mark.usefixtures("one_thread")

# Without the launchers' variables of the environment the tests run in (a test under torchrun or Slurm).
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_ARRAY_TASK_ID",
               "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP")
ENV = {**{k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}, "OMP_NUM_THREADS": "1"}
TINY = ["--size", "32", "--exo-frames", "4", "--ego-frames", "4", "--transition-frames", "2", "--transition",
        "flow", "--takes-per-shard", "1", "--no-progress"]
N_TAKES = 5  # 5 shards: over 3 processes 2 + 2 + 1


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """5 tiny takes; take 3's exo video is broken (a failed take in shard 3, of process 0 of 3)."""
    root = tmp_path_factory.mktemp("takes") / "takes"
    assert cli(["render-synthetic", "--out", str(root), "--takes", str(N_TAKES), "--size", "32", "--exo-frames", "4",
                "--ego-frames", "4"]) == 0
    (root / "take_00003" / "exo.mp4").write_bytes(b"not a video" * 50)
    return root


@pytest.fixture(scope="module")
def one(takes, tmp_path_factory):
    """The folder one process writes."""
    out = tmp_path_factory.mktemp("one") / "shards"
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY]) == 0
    return out


def command(takes, out, *extra):
    return [sys.executable, "-m", "syn2seq_core", "prepare", "--takes", str(takes), "--out", str(out), *TINY, *extra]


def task_env(task: int, first: int = 1, count: int = 3, **more) -> dict:
    return {**ENV, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first),
            "SLURM_ARRAY_TASK_COUNT": str(count), **more}


def run_task(takes, out, task: int, *extra, **env):
    r = subprocess.run(command(takes, out, *extra), env=task_env(task, **env), capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def files(out) -> dict[str, bytes]:
    """Every file of a prepared folder (hidden temporary files included: there must be none)."""
    return {p.name: p.read_bytes() for p in sorted(Path(out).iterdir())}


def manifest(out) -> dict:
    return json.loads((Path(out) / shards.MANIFEST_NAME).read_text())


def test_the_one_process_folder(one):
    doc = manifest(one)
    assert doc["complete"] and len(doc["shards"]) == N_TAKES
    assert [e["failed"] != [] for e in doc["shards"]] == [False, False, False, True, False]
    assert [json.loads(line)["take"] for line in (one / shards.FAILURES_NAME).read_text().splitlines()] == \
        ["take_00003"]


def test_three_torchrun_ranks_write_the_bytes_of_one(takes, one, tmp_path):
    """torchrun --nproc_per_node=3 (gloo for one barrier): ranks 0, 1, 2 write shards {0, 3}, {1, 4}, {2}; rank 0
    writes the manifest after the barrier. Then a resume on one process finds everything done, and a shard lost
    afterwards is rewritten by one process to the same bytes (a run may resume on another process count)."""
    out = tmp_path / "three"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
                        "-m", "syn2seq_core", "prepare", "--takes", str(takes), "--out", str(out), *TINY],
                       env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank, (n, failed) in enumerate([(2, 1), (2, 0), (1, 0)]):
        assert (f"prepare (torchrun process {rank} of 3: shards i % 3 == {rank}, cpu): {n} of 5 shards ({n} written, "
                f"0 already done), {n - failed} samples, {failed} takes failed") in r.stdout, r.stdout
    assert r.stdout.count("prepare: all 5 shards written, 4 samples, 1 takes failed") == 1  # rank 0 only
    assert files(out) == files(one)
    # resumed by one process: nothing to do, nothing rewritten
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY, "--verify"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")} == stamps
    (out / "shard-000004.tar").unlink()
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY]) == 0
    assert files(out) == files(one)


def test_slurm_array_tasks_from_1_in_any_order_and_merge(takes, one, tmp_path, capsys):
    """--array=1-3: task k writes shards i % 3 == k - 1. Tasks 3 and 2 finish first and leave the manifest
    incomplete (training refuses it); --merge names the missing shards; task 1, the last, writes the manifest."""
    out = tmp_path / "array"
    printed = run_task(takes, out, 3)
    assert "slurm-array process 2 of 3: shards i % 3 == 2, cpu): 1 of 5 shards" in printed
    assert "4 shards of other processes not written yet" in printed
    printed = run_task(takes, out, 2)
    assert "2 shards of other processes not written yet" in printed
    assert not manifest(out)["complete"]
    with pytest.raises(Syn2SeqInputError, match="complete manifest"):
        shards.read_manifest(out)
    capsys.readouterr()
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY, "--merge"]) == 2
    assert "expected all 5 shards written, got 2 missing: shards [0, 3]" in capsys.readouterr().err
    printed = run_task(takes, out, 1)
    assert "process 0 of 3: shards i % 3 == 0, cpu): 2 of 5 shards (2 written" in printed
    assert "prepare: all 5 shards written, 4 samples, 1 takes failed" in printed
    assert files(out) == files(one)
    # --merge on a finished folder writes the same bytes again
    assert cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY, "--merge"]) == 0
    assert files(out) == files(one)


def test_a_half_written_shard_survives_another_process_start_up(takes, one, tmp_path):
    """Task 2 holds its shard 1 half-written (test hook); tasks 1 and 3 start, clean up and finish meanwhile:
    task 1 removes a stale temporary file of its own shard 0 (a killed run's), not task 2's, and neither writes
    the manifest. Released, task 2 finishes last and writes it: the bytes of one process."""
    out, hold = tmp_path / "held", tmp_path / "hold"
    hold.mkdir()
    (hold / "hold-shard-000001.tar").touch()
    out.mkdir()
    stale = out / ".shard-000000.killedrun.partial.tar"  # what a killed run of task 1 left
    stale.write_bytes(b"half")
    proc = subprocess.Popen(command(takes, out), env=task_env(2, **{shards.HOLD_ENV: str(hold)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (hold / "held-shard-000001.tar").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "task 2 never reached its first shard"
            time.sleep(0.05)
        partial = list(out.glob(".shard-000001.*.partial.tar"))
        assert len(partial) == 1 and partial[0].stat().st_size > 0
        for task in (1, 3):
            printed = run_task(takes, out, task)
            assert "shards of other processes not written yet" in printed and "all 5 shards" not in printed
        assert partial[0].exists() and partial[0].stat().st_size > 0, "another task's start-up removed it"
        assert not stale.exists()
        assert not manifest(out)["complete"]
        (hold / "release-shard-000001.tar").touch()
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stdout + stderr
    assert "prepare: all 5 shards written, 4 samples, 1 takes failed" in stdout
    assert files(out) == files(one)


def test_share_from_the_launchers_environment():
    """prepare's share rule is syn2seq_core.parallel.distributed's (eval's too); here what prepare relies on."""
    def share(env):
        s = shards.share_from_env(env)
        return s.index, s.count, s.launcher, s.local_rank

    assert share({}) == (0, 1, "single", 0) and share({"WORLD_SIZE": "1", "RANK": "0"})[1] == 1
    assert share({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == (2, 4, "torchrun", 0)
    # arrays starting at 1 and at 0, with a step, and an array of 2-process torchrun jobs
    assert share({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"}) == \
        (0, 3, "slurm-array", 0)
    assert share({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"})[0] == 2
    assert share({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "3",
                  "SLURM_ARRAY_TASK_STEP": "2"})[0] == 2
    both = shards.share_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1",
                                  "SLURM_ARRAY_TASK_COUNT": "2", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert (both.index, both.count, both.launcher) == (3, 4, "slurm-array+torchrun") and both.owns(7)
    assert not both.owns(6)
    with pytest.raises(Syn2SeqInputError, match="SLURM_ARRAY_TASK_MIN: expected an integer .*got not set"):
        share({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
    with pytest.raises(Syn2SeqInputError, match="contiguous array"):  # --array=1,5,9: task 5 is not k = 1
        share({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
    with pytest.raises(Syn2SeqInputError, match="RANK: expected a rank below WORLD_SIZE 2, got 2"):
        share({"WORLD_SIZE": "2", "RANK": "2"})
    # one device per process: the given devices by LOCAL_RANK, else cuda:LOCAL_RANK with CUDA, else the CPU
    assert shards.share_device(both, ["cuda:0", "cuda:1"]) == "cuda:1"
    import torch

    if not torch.cuda.is_available():
        assert shards.share_device(both, None) == "cpu"


def test_the_documented_array_commands(takes, one, tmp_path, monkeypatch):
    """README's Slurm lines, scaled down: an array's tasks (0-based this time; here one after another in this
    process), then --merge as a dependent job runs it; and an array of more tasks than shards."""
    def array(out, tasks, first):
        for task in tasks:
            for name, value in (("ID", task), ("MIN", first), ("COUNT", len(tasks))):
                monkeypatch.setenv(f"SLURM_ARRAY_TASK_{name}", str(value))
            assert cli(["prepare", "--takes", str(takes), "--out", str(out), *TINY]) == 0
        for name in ("ID", "MIN", "COUNT"):
            monkeypatch.delenv(f"SLURM_ARRAY_TASK_{name}")

    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    array(tmp_path / "zero", [0, 1], first=0)
    assert cli(["prepare", "--takes", str(takes), "--out", str(tmp_path / "zero"), *TINY, "--merge"]) == 0
    assert files(tmp_path / "zero") == files(one)
    array(tmp_path / "many", list(range(1, 8)), first=1)  # tasks 6 and 7 have no shard
    assert files(tmp_path / "many") == files(one)
