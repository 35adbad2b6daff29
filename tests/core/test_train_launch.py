"""Every shipped training config runs at its own documented launch line (issue 29.5).

Each ``configs/**/*.toml`` states in its header how it is launched (``syn2seq train --config ...`` or
``torchrun --nproc_per_node=N -m syn2seq_core train --config ...``). Here each line is parsed and
* checked at its documented process count: the global batch ``[optim] batch_size`` splits over N processes x
  ``[optim] accumulate`` micro-batches (``train.check_processes``, what ``train`` refuses at launch);
* run for one step, in dependency order (a stage's ``init_from`` is the run folder an earlier line writes), in a
  scratch working folder, at a tiny size: frames 16 x 16, a small network of the same architecture, at most 2
  processes with each process's share of the batch as written, at most 1 DataLoader worker; every other key as
  written. What the headers fetch or prepare from outside (``syn2seq download dfot-re10k``, Ego-Exo4D shards
  made with Wan) is stood in for: a DFoT-layout checkpoint converted by ``syn2seq convert-dfot``, and shards that
  ``syn2seq prepare`` makes from procedural takes with the configs' frame counts.

Reference DFoT (fork ktncktnc/diffusion-forcing-transformer @ a3a0e70): ``configurations/dataset_experiment/
realestate10k_video_generation.yaml:2,51`` trains RE10K with 8 sequences per GPU on 12 H100s (a per-device
batch under Lightning). Our ``[optim] batch_size`` is the global batch (so a run does not depend on its process
count), which is why a config's batch must be a multiple of its launch line's processes.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syn2seq_core.training.config import check_processes, load_config, resolve_config_file
from syn2seq_core.training.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").rglob("*.toml"))
SIZE = 16
LAUNCH = re.compile(r"^#\s*(?P<cmd>(?:torchrun\s.*-m syn2seq_core|syn2seq|python -m syn2seq_core) train\s.*)$")

pytestmark = pytest.mark.usefixtures("one_thread")


def launch_lines(path: Path) -> list[dict]:
    """The header's launch lines of config ``path``: {"procs", "config", "out", "rest", "line"} each."""
    found = []
    for line in path.read_text().splitlines():
        m = LAUNCH.match(line.strip())
        if not m:
            continue
        words = shlex.split(m["cmd"])
        procs = 1
        if words[0] == "torchrun":
            for i, w in enumerate(words):
                if w.startswith("--nproc_per_node"):
                    procs = int(w.split("=", 1)[1] if "=" in w else words[i + 1])
        args = words[words.index("train") + 1:]
        opts, rest = {}, []
        i = 0
        while i < len(args):
            if args[i] in ("--config", "--out"):
                opts[args[i]] = args[i + 1]
                i += 2
            else:
                rest.append(args[i])
                i += 1
        found.append({"procs": procs, "config": opts.get("--config"), "out": opts.get("--out"), "rest": rest,
                      "line": m["cmd"]})
    return found


def own_line(path: Path) -> dict | None:
    """The first launch line of ``path``'s header that launches ``path`` itself (None: none does)."""
    rel = path.relative_to(REPO).as_posix()
    lines = [ln for ln in launch_lines(path) if ln["config"] == rel]
    return lines[0] if lines else None


def tiny_model(model: dict, dfot_table: dict) -> dict:
    """A [model] table of the same architecture at SIZE x SIZE with few channels."""
    from syn2seq_core.dfot.checkpoint import config_from_table

    if model.get("arch") == "uvit3d_pose" and model.get("preset", "re10k") == "re10k" and set(model) <= {
            "arch", "preset"}:
        return dict(dfot_table)  # the converted stand-in of DFoT_RE10K's network
    net = config_from_table(model)
    if model.get("arch") == "uvit3d_pose":
        levels = len(net.channels)
        return {**model, "height": SIZE, "width": SIZE, "emb_channels": 32, "noise_features": 32, "num_heads": 2,
                "channels": [64 if t == "TransformerBlock" else 32 for t in net.block_types],
                "num_updown_blocks": [1] * (levels - 1), "num_mid_blocks": 1}
    return {**model, "height": SIZE, "width": SIZE, "patch_size": 4, "dim": 32, "heads": 2, "depth": 2}


def scaled(path: Path, line: dict, dfot_table: dict, procs: int) -> dict:
    """The config's dict (its base resolved) at the tiny size, for ``procs`` processes with each one's share of the
    batch as written."""
    raw = resolve_config_file(path)
    raw["model"] = tiny_model(raw.get("model", {}), dfot_table)
    data = raw.setdefault("data", {})
    data.update(size=SIZE, supersample=1)
    if data.get("loader_workers"):
        data["loader_workers"] = 1
    optim = raw.setdefault("optim", {})
    optim["batch_size"] = load_config(path).optim.batch_size // line["procs"] * procs
    return raw


def dfot_stand_in(work: Path) -> dict:
    """``dfot_re10k.safetensors`` (what ``syn2seq download dfot-re10k`` fetches): a small U-ViT3D-Pose in DFoT's
    checkpoint layout, converted as the README says; returns its network as a [model] table."""
    import dataclasses

    from syn2seq_core.cli import main as cli
    from syn2seq_core.dfot.checkpoint import read_config
    from syn2seq_core.dfot.uvit3d import uvit3d_preset

    from .test_convert_dfot import make_dfot_ckpt

    make_dfot_ckpt(work / "DFoT_RE10K.ckpt")
    assert cli(["convert-dfot", str(work / "DFoT_RE10K.ckpt"), str(work / "dfot_re10k.safetensors"),
                "--size", str(SIZE)]) == 0
    net, preset = read_config(work / "dfot_re10k.safetensors"), uvit3d_preset("re10k")
    table = {"arch": "uvit3d_pose", "preset": "re10k"}
    for f in dataclasses.fields(net):
        if getattr(net, f.name) != getattr(preset, f.name):
            value = getattr(net, f.name)
            table[f.name] = list(value) if isinstance(value, tuple) else value
    return table


def make_shards(work: Path, raw: dict) -> None:
    """Shards at the config's manifest paths with its frame counts, from procedural takes."""
    from syn2seq_core.cli import main as cli

    data = raw["data"]
    for manifest in data.get("shards", []):
        folder = work / Path(manifest).parent
        if folder.exists():
            continue
        takes = work / "takes" / folder.name
        assert cli(["render-synthetic", "--out", str(takes), "--takes", "2", "--size", str(SIZE),
                    "--exo-frames", str(data["exo_frames"]), "--ego-frames", str(data["ego_frames"]),
                    "--supersample", "1"]) == 0
        assert cli(["prepare", "--takes", str(takes), "--out", str(folder), "--size", str(SIZE),
                    "--exo-frames", str(data["exo_frames"]), "--ego-frames", str(data["ego_frames"]),
                    "--transition-frames", str(data["transition_frames"]), "--transition", "blend",
                    "--clips", "1", "--no-progress"]) == 0


def run_order() -> list[Path]:
    """The configs, each after the one whose launch line writes the run folder its init_from names."""
    outs = {own_line(p)["out"]: p for p in CONFIGS if own_line(p)}
    done, order = set(), []

    def visit(path):
        if path in done:
            return
        done.add(path)
        source = load_config(path).init_from or ""
        for out, other in outs.items():
            if other != path and (source == out or source.startswith(out.rstrip("/") + "/")):
                visit(other)
        order.append(path)

    for p in CONFIGS:
        visit(p)
    return order


def command(line: dict, config: Path, procs: int) -> list[str]:
    bin_dir = Path(sys.executable).parent
    tail = ["train", "--config", str(config), "--out", line["out"], *line["rest"], "--max-steps", "1",
            "--no-progress"]
    if line["procs"] > 1:
        exe = shutil.which("torchrun", path=str(bin_dir)) or shutil.which("torchrun")
        return [exe, "--standalone", f"--nproc_per_node={procs}", "-m", "syn2seq_core", *tail]
    exe = shutil.which("syn2seq", path=str(bin_dir))
    return [exe, *tail] if exe else [sys.executable, "-m", "syn2seq_core", *tail]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """{config path: (launch line, CompletedProcess, run folder)}: every config's launch line run for one step
    in one scratch working folder, in dependency order."""
    import os

    work = tmp_path_factory.mktemp("launch")
    dfot_table = dfot_stand_in(work)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = {}
    for path in run_order():
        line = own_line(path)
        if line is None:
            continue
        try:
            check_processes(load_config(path), line["procs"])
        except ValueError:
            results[path] = (line, None, None)
            continue
        procs = min(line["procs"], 2)
        raw = scaled(path, line, dfot_table, procs)
        make_shards(work, raw)
        copy = work / "configs" / path.relative_to(REPO / "configs").with_suffix(".json")
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(json.dumps(raw))
        r = subprocess.run(command(line, copy, procs), cwd=work, env=env, capture_output=True, text=True,
                           timeout=240)
        results[path] = (line, r, work / line["out"])
    return results


@pytest.mark.parametrize("path", CONFIGS, ids=[p.relative_to(REPO / "configs").as_posix() for p in CONFIGS])
def test_a_shipped_config_runs_at_its_documented_launch_line(launched, path):
    rel = path.relative_to(REPO).as_posix()
    assert path in launched, f"{rel}: no launch line in its header names it (`syn2seq train --config {rel} ...`)"
    line, r, out = launched[path]
    check_processes(load_config(path), line["procs"])  # raises naming the batch and the process count
    assert r.returncode == 0, f"{line['line']}\n{r.stderr[-3000:]}"
    assert load_checkpoint(out)["step"] == 1
    assert (out / "model.safetensors").exists()


def test_launch_lines_are_parsed_as_written():
    line = own_line(REPO / "configs" / "dfot_re10k_finetune.toml")
    assert line["procs"] == 8 and line["out"] == "runs/re10k_ft" and line["rest"] == []
    cue = own_line(REPO / "configs" / "synthetic_tiny_cue.toml")
    assert cue["procs"] == 1 and cue["rest"] == ["--minutes", "62"]
