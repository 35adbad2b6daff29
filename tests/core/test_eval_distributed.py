"""`syn2seq eval` on many processes (issue 33.2): torchrun ranks and Slurm array tasks (simulated by their
environment variables, arrays starting at 1) score take i on process i % N, write each take's record as it is
scored, and one process merges the records into the report one process writes, byte for byte (JSON, every table,
the plots). Processes take different branches: a rank with no takes, a rank that resumes a half-finished run,
array tasks that finish before the others (no report) and the last one (the report), a record of other settings
refused before the model loads. FVD / FID come from the gathered per-take features, computed once at the merge.
``--batch-size``: several takes generated at once, their network calls batched, the same samples to float
tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from syn2seq_core.evaluation.batching import Batcher, map_batched
from syn2seq_core.cli import main as cli
from syn2seq_core.parallel.distributed import share_from_env
from syn2seq_core.base.errors import Syn2SeqInputError

pytestmark = pytest.mark.usefixtures("one_thread")

# Without the launchers' variables of the environment the tests run in (a test under torchrun or Slurm).
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_ARRAY_TASK_ID",
               "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP")
ENV = {**{k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}, "OMP_NUM_THREADS": "1"}
N_TAKES = 5  # over 3 processes: takes {0, 3}, {1, 4}, {2}
TINY = ["--steps", "2"]  # the bundled model (32 px, depth cue), 2 denoising steps


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_dist") / "takes"
    assert cli(["render-synthetic", "--out", str(root), "--takes", str(N_TAKES), "--size", "32", "--exo-frames", "3",
                "--ego-frames", "4", "--supersample", "1"]) == 0
    return root


def report_files(out: Path) -> dict[str, bytes]:
    """Every report file beside ``out`` (R.json, R.csv, R.md, R.tex, R_by_category.*, R_*.png), not the records."""
    return {p.name: p.read_bytes() for p in sorted(out.parent.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def one(takes, tmp_path_factory):
    """The report files of plain `syn2seq eval` (one process, no rendezvous), for all takes and for the first 2."""
    folder = tmp_path_factory.mktemp("one")
    for name, extra in (("all", []), ("two", ["--limit", "2"])):
        out = folder / name / "r.json"
        assert cli(["eval", "--takes", str(takes), *TINY, *extra, "--out", str(out)]) == 0
        assert not (out.parent / "r_takes").exists()  # one process writes no records
    return {"all": report_files(folder / "all" / "r.json"), "two": report_files(folder / "two" / "r.json")}


def eval_command(takes, out, *extra) -> list[str]:
    return ["-m", "syn2seq_core", "eval", "--takes", str(takes), *TINY, "--out", str(out), *extra]


def torchrun(procs: int, args: list[str]) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
                        *args], env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def task_env(task: int, count: int, first: int = 1) -> dict:
    return {**ENV, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first),
            "SLURM_ARRAY_TASK_COUNT": str(count)}


def run_task(args: list[str], env: dict, code: int = 0) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == code, r.stdout + r.stderr
    return r


# --- the share of each process -------------------------------------------------------------------------------
def test_share_from_env_torchrun_slurm_arrays_and_both():
    assert share_from_env({}).count == 1 and not share_from_env({}).distributed
    s = share_from_env({"WORLD_SIZE": "3", "RANK": "2", "LOCAL_RANK": "2"})
    assert (s.index, s.count, s.launcher, s.local_rank) == (2, 3, "torchrun", 2)
    assert s.items(5) == [2] and share_from_env({"WORLD_SIZE": "3", "RANK": "0"}).items(5) == [0, 3]
    assert share_from_env({"WORLD_SIZE": "3", "RANK": "2"}).items(2) == []  # a rank with no takes
    # --array=1-4 and --array=0-3 number their tasks alike; --array=1-7:2 (tasks 1, 3, 5, 7)
    for first in (0, 1):
        s = share_from_env({"SLURM_ARRAY_TASK_ID": str(first + 2), "SLURM_ARRAY_TASK_MIN": str(first),
                            "SLURM_ARRAY_TASK_COUNT": "4"})
        assert (s.index, s.count, s.launcher, s.rank) == (2, 4, "slurm-array", 0)
    s = share_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4",
                        "SLURM_ARRAY_TASK_STEP": "2"})
    assert (s.index, s.count) == (2, 4)
    # an array of torchrun jobs: task 1 of 2, rank 1 of 3 -> process 4 of 6
    s = share_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2",
                        "WORLD_SIZE": "3", "RANK": "1"})
    assert (s.index, s.count, s.launcher) == (4, 6, "slurm-array+torchrun")
    with pytest.raises(Syn2SeqInputError, match="SLURM_ARRAY_TASK_ID.*MIN \\+ k \\* STEP"):
        share_from_env({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
    with pytest.raises(Syn2SeqInputError, match="SLURM_ARRAY_TASK_MIN.*not set"):
        share_from_env({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
    with pytest.raises(Syn2SeqInputError, match="RANK.*an integer.*'x'"):
        share_from_env({"WORLD_SIZE": "2", "RANK": "x"})


def test_one_device_per_process():
    """Under torchrun --device cuda is cuda:LOCAL_RANK and an explicit cuda:N (every rank on one GPU) is refused;
    the CPU and a single process keep their device."""
    from syn2seq_core.parallel.distributed import share_device

    ranks = share_from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert share_device(ranks, "cpu") == "cpu" and share_device(share_from_env({}), "cuda:1") == "cuda:1"
    with pytest.raises(Syn2SeqInputError, match="--device.*cuda \\(each torchrun process takes cuda:LOCAL_RANK\\).*'cuda:1'"):
        share_device(ranks, "cuda:1")
    if torch.cuda.device_count() >= 2:
        assert share_device(ranks, "cuda") == "cuda:1"


# --- --batch-size: batched network calls --------------------------------------------------------------------
def test_batcher_gathers_calls_of_every_generating_thread_by_shape():
    """An oracle network (2x, recording each call's batch): 4 threads generating at once, two of each shape, 3
    calls each. Each network call waits for every generating thread's call, calls of another shape go in a call
    of their own (2 per round), and each thread gets its own rows back; a thread that is not generating holds
    nobody."""
    batches = []

    def network(x, logsnr, rays, pose_mask=None):
        batches.append(tuple(x.shape))
        return 2 * x

    batcher = Batcher(network)
    start = threading.Barrier(4)
    results: dict[int, list] = {}

    def take(k: int):
        shape = (1, 3 if k % 2 else 5, 2)
        with batcher.generating():
            start.wait(30)
            results[k] = [batcher(torch.full(shape, float(10 * k + j)), torch.zeros(1, shape[1]), None)
                          for j in range(3)]

    threads = [threading.Thread(target=take, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k in range(4):
        assert [float(r.unique()) for r in results[k]] == [2.0 * (10 * k + j) for j in range(3)]
    assert (batcher.calls, batcher.served) == (6, 12)
    assert sorted(batches) == [(2, 3, 2)] * 3 + [(2, 5, 2)] * 3
    assert batcher(torch.ones(1, 2, 2), torch.zeros(1, 2), None).sum() == 8  # a thread not generating: at once


def test_batcher_error_reaches_every_take_of_the_batch_and_cancel_stops_the_others():
    def network(x, logsnr, rays, pose_mask=None):
        raise RuntimeError("out of memory (simulated)")

    batcher = Batcher(network)
    errors = []

    def take():
        with batcher.generating():
            try:
                batcher(torch.ones(1, 2, 2), torch.zeros(1, 2), None)
            except RuntimeError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=take) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == ["out of memory (simulated)"] * 3

    def fails(i, model):
        if i == 1:
            raise ValueError("take 1 refused")
        return i

    class Model:  # map_batched with a model: its network is batched
        network = staticmethod(lambda x, logsnr, rays, pose_mask=None: x)

    with pytest.raises(ValueError, match="take 1 refused"):
        list(map_batched(fails, range(6), Model(), 3))


def test_batched_takes_equal_unbatched_to_float_tolerance(takes):
    """Three takes (one with a longer generated view: another window shape, its own network calls) generated one
    at a time and three at a time with the bundled model (eta 1: fresh noise every step, from each take's own
    generator): the same frames to float tolerance, with fewer network calls than the takes made."""
    from syn2seq_core.data.takes import find_takes, load_take
    from syn2seq_core.generation.takes import generate_take
    from syn2seq_core.generation.pipeline import load_model

    model = load_model(None)
    loaded = [load_take(takes / name) for name in sorted(os.listdir(takes))[:2]]
    longer = takes.parent / "longer"
    assert cli(["render-synthetic", "--out", str(longer), "--takes", "1", "--seed", "77", "--size", "32",
                "--exo-frames", "3", "--ego-frames", "6", "--supersample", "1"]) == 0
    loaded.append(load_take(find_takes(longer)[0]))

    def generate(take, m):
        return generate_take(take, m, steps=3, seed=11).generated

    one = dict(map_batched(generate, loaded, model, 1))
    stats: dict = {}
    batched = dict(map_batched(generate, loaded, model, 3, stats))
    for i in range(3):
        torch.testing.assert_close(batched[i], one[i], atol=1e-4, rtol=0)
    b = stats["batcher"]
    assert b.served > b.calls  # calls were shared


# --- the records --------------------------------------------------------------------------------------------
def test_records_keep_scores_features_and_example_frames_exactly(tmp_path):
    """A take's record holds its scores, I3D and Inception features and example frames bit for bit, in their
    order; FVD / FID of the records' features equal those of the scores themselves (computed once, on all)."""
    from syn2seq_core.evaluation.run import TakeScores, read_take_record, summarize, take_record

    g = torch.Generator().manual_seed(0)
    scores = []
    for k in range(3):
        per = {m: {"frames": 2, "psnr": {"per_frame": [20.0 + k / 3, 21.0], "mean": 20.5 + k / 7},
                   "ssim": {"per_frame": [0.1, 0.2 + k], "mean": 0.15 + k / 11}, "lpips_alex": "unavailable: x"}
               for m in ("sample", "copy_last")}
        s = TakeScores(f"t{k}", per, {"sample": 1.0 / 3, "copy_last": 2.0}, {"sample": 0.1, "copy_last": 0.2}, "A",
                       {"source": torch.rand(3, 4, 4, generator=g), "sample": torch.rand(3, 4, 4, generator=g),
                        "copy_last": torch.rand(3, 4, 4, generator=g), "target": torch.rand(3, 4, 4, generator=g)},
                       {m: torch.randn(400, generator=g) for m in ("sample", "copy_last", "target")},
                       {m: torch.randn(2, 16, generator=g) for m in ("sample", "copy_last", "target")})
        path = tmp_path / f"{k}.safetensors"
        path.write_bytes(take_record(s, {"run": 1}, {"index": k}))
        back = read_take_record(path)
        assert (back.name, back.per_method, back.own_psnr, back.other_psnr, back.category) == \
            (s.name, s.per_method, s.own_psnr, s.other_psnr, s.category)
        for a, b in ((back.example, s.example), (back.features, s.features), (back.frame_features, s.frame_features)):
            assert list(a) == list(b) and all(torch.equal(a[m], b[m]) for m in a)
        scores.append((s, back))
        short = replace(s, features="take 't' has 4 generated frames")  # a reason instead of features survives
        path.write_bytes(take_record(short, {}, {}))
        assert read_take_record(path).features == short.features
    merged = summarize([back for _, back in scores])
    assert merged == summarize([s for s, _ in scores])
    assert merged["methods"]["sample"]["fvd"]["n"] == 3 and merged["methods"]["sample"]["fid"]["n"] == 6
    (tmp_path / "bad.safetensors").write_bytes(b"\x08" + b"\0" * 20)
    with pytest.raises(Syn2SeqInputError, match="bad.safetensors.*a damaged or foreign file.*Delete it"):
        read_take_record(tmp_path / "bad.safetensors")


# --- many processes, the bundled model ------------------------------------------------------------------------
def test_three_torchrun_ranks_one_resuming_write_the_report_of_one(takes, one, tmp_path):
    """A half-finished run (a Slurm task of an array of 5 scored take 1 only), then torchrun --nproc_per_node=3:
    rank 0 scores takes 0 and 3, rank 1 finds take 1 recorded and scores take 4 only, rank 2 scores take 2;
    rank 0 merges after the barrier: every report file equals the one-process run's. Rerun: nothing is scored."""
    out = tmp_path / "three" / "r.json"
    first = run_task(eval_command(takes, out), task_env(2, count=5))
    assert "1 takes scored, 0 already recorded" in first.stderr and not out.exists()
    record = out.parent / "r_takes" / "000001.safetensors"
    stamp = record.stat().st_mtime_ns
    r = torchrun(3, eval_command(takes, out))
    for rank, (scored, recorded) in enumerate([(2, 0), (1, 1), (1, 0)]):
        assert f"torchrun process {rank} of 3 (items i % 3 == {rank})): {scored} takes scored, {recorded} already " \
               "recorded, of 5" in r.stderr, r.stderr
    assert r.stderr.count("merged 5 take records") == 1  # rank 0 only
    assert record.stat().st_mtime_ns == stamp
    assert report_files(out) == one["all"]
    again = torchrun(3, eval_command(takes, out))
    assert again.stderr.count("0 takes scored") == 3 and report_files(out) == one["all"]


def test_a_rank_without_takes(takes, one, tmp_path):
    """--limit 2 on 3 ranks with --write-videos and --batch-size (the documented command): rank 2 has no take (it loads no model) and still meets the others
    at the barrier; ranks 0 and 1 each move their take's result folder into place as it is scored."""
    out, videos = tmp_path / "two" / "r.json", tmp_path / "videos"
    r = torchrun(3, eval_command(takes, out, "--limit", "2", "--write-videos", str(videos), "--batch-size", "2"))
    assert "process 2 of 3 (items i % 3 == 2)): 0 takes scored, 0 already recorded, of 2" in r.stderr, r.stderr
    assert report_files(out) == one["two"]
    assert sorted(p.name for p in videos.iterdir()) == ["take_00000", "take_00001"]  # no staging folder left
    for name in ("take_00000", "take_00001"):
        assert (videos / name / "ego_generated.mp4").is_file() and (videos / name / "metrics.json").is_file()


def test_slurm_array_from_1_last_task_merges_and_merge_step(takes, one, tmp_path):
    """--array=1-2 simulated: task 2 (takes 1, 3) finishes first and writes no report; task 1 (takes 0, 2, 4) is
    the last and merges; `eval ... --merge` writes the same bytes again. A record of other settings is refused
    before the model loads, naming it; --merge with a record missing names it and writes nothing."""
    out = tmp_path / "array" / "r.json"
    r = run_task(eval_command(takes, out), task_env(2, count=2))
    assert "slurm-array process 1 of 2" in r.stderr and "not scored yet" in r.stdout and not out.exists()
    r = run_task(eval_command(takes, out), task_env(1, count=2))
    assert "merged 5 take records" in r.stderr
    assert report_files(out) == one["all"]
    (out.parent / "r.json").unlink()
    assert cli(["eval", "--takes", str(takes), *TINY, "--out", str(out), "--merge"]) == 0
    assert report_files(out) == one["all"]

    before = report_files(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out.parent / "r_takes").iterdir()}
    r = run_task(eval_command(takes, out, "--seed", "1"), task_env(1, count=2), code=2)
    assert "r_takes/000000.safetensors" in r.stderr and "model.seed 0 (this run: 1)" in r.stderr, r.stderr
    assert "Give another --out" in r.stderr and report_files(out) == before
    assert {p.name: p.stat().st_mtime_ns for p in (out.parent / "r_takes").iterdir()} == stamps
    (out.parent / "r_takes" / "000003.safetensors").unlink()
    r = run_task(eval_command(takes, out, "--merge"), ENV, code=2)
    assert "a record of each of the 5 takes" in r.stderr and "1 missing: takes 3 (take_00003)" in r.stderr, r.stderr
    assert report_files(out) == before


def test_many_processes_need_out(takes, tmp_path):
    r = run_task(["-m", "syn2seq_core", "eval", "--takes", str(takes), *TINY], task_env(1, count=2), code=2)
    assert "--out" in r.stderr and "per-take records" in r.stderr


# --- FID from gathered features ------------------------------------------------------------------------------
def test_fid_of_two_ranks_is_computed_once_on_all_features(takes, tmp_path):
    """--no-model with another system's videos and an FID Inception (random weights in the reference layout) on
    2 torchrun ranks: each rank keeps its takes' frame features in their records, rank 0 computes FID once on all
    of them: the report equals the one-process report (an FID averaged over ranks would not)."""
    from safetensors.torch import save_file

    from syn2seq_core.io.video import read_video, write_video

    from .test_fid import random_state_dict

    other = tmp_path / "other"
    for name in sorted(os.listdir(takes))[:3]:
        write_video(other / f"{name}.mp4", (read_video(takes / name / "ego.mp4") * 0.8).clamp(0, 1), fps=8)
    weights = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in random_state_dict().items()}, str(weights))
    common = ["--no-model", "--eval-size", "32", "--no-baselines", "--limit", "3", "--videos", f"other={other}",
              "--inception", str(weights)]
    ref = tmp_path / "one" / "r.json"
    assert cli(["eval", "--takes", str(takes), *common, "--out", str(ref)]) == 0
    out = tmp_path / "two" / "r.json"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "syn2seq_core", "eval", "--takes", str(takes), *common, "--out", str(out)], env=ENV,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert report_files(out) == report_files(ref)
    fid = json.loads(out.read_text())["summary"]["methods"]["other"]["fid"]
    assert fid["n"] == 12 and fid["mean"] > 0  # 3 takes x 4 frames in one set


def test_the_batch_size_benchmark_runs_as_documented(takes, capsys):
    """`python -m syn2seq_core.evaluation.batching --takes DIR --batch-size 1 4 --rounds 3` (docs/evaluation.md), scaled down:
    one row per (round, size) and the throughput ratio line (no timing is asserted)."""
    from syn2seq_core.evaluation.batching import main

    assert main(["--takes", str(takes), "--batch-size", "1", "3", "--rounds", "1", "--steps", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["batch_size"], r["takes"]) for r in rows] == [(1, N_TAKES), (3, N_TAKES)]
    assert rows[0]["mean_batch"] == 1.0 and rows[1]["mean_batch"] > 1.0
