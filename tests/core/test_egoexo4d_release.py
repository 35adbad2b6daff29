"""The commands of docs/egoexo4d.md on a rendered release: render-synthetic --layout egoexo4d (the Aria stream turned
as the real release turns it, a marker in it, every damage kind), index-egoexo4d (the skip table), and every indexed
take read back: cameras against the renderer's truth (rotation, centre, K) and the marker where the camera says.

The truths are independent of the reader: the poses are the procedural world's (``sample_scene`` / ``ego_c2w``,
the stored Aria frames being upright, i.e. the world's ego camera), the Aria intrinsics are projectaria_tools'
``rotate_camera_calib_cw90deg`` of the file's raw calibration, the exo intrinsics the world's.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from syn2seq_core.cli import main
from syn2seq_core.data.egoexo4d_fixture import DAMAGE_KINDS, MARKER_RAW_PX
from syn2seq_core.data.egoexo4d_index import load_indexed_take, read_egoexo4d_index, read_egoexo4d_index_header
from syn2seq_core.data.synthetic import SyntheticConfig
from syn2seq_core.data.synthetic_scene import ego_c2w, sample_scene

from .test_egoexo4d_conformance import _marker_centre, _project

SIZE, FRAMES, TAKES = 48, 4, 3
# the skip table of a release with one take of every damage kind
WANT_SKIPS = {"dropped": 1, "outside take": 1, "missing folder": 1, "missing video": 1, "missing trajectory": 1,
              "missing calibration": 1, "missing timesync": 1, "damaged CSV": 1, "damaged JSON": 1,
              "wrong frame count": 1, "frames outside trajectory": 1}


def _angle_deg(Ra, Rb) -> float:
    """Angle between two rotations (the truth is the world's float32 matrix, orthonormal to ~1e-7: taken as the
    nearest rotation, since acos of the trace would turn that 1e-7 into ~0.02 degrees)."""
    from scipy.spatial.transform import Rotation

    a, b = (Rotation.from_matrix(np.asarray(R, dtype=np.float64)) for R in (Ra, Rb))
    return math.degrees(float((a.inv() * b).magnitude()))


DOC = Path(__file__).resolve().parents[2] / "docs" / "egoexo4d.md"


def doc_command(start: str) -> list[str]:
    """The command of docs/egoexo4d.md that starts with ``start`` (continuation lines joined, ``[...]`` dropped)."""
    text = DOC.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith(start))
    return shlex.split(re.sub(r"\[[^\]]*\]", "", line))[1:]  # without "syn2seq"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The docs' render-synthetic command as written, plus one --damaged of each kind."""
    root = tmp_path_factory.mktemp("egoexo4d_release") / "release"
    cmd = [str(root) if a == "ROOT" else a for a in doc_command("syn2seq render-synthetic --layout egoexo4d")]
    assert cmd[cmd.index("--takes") + 1] == str(TAKES) and cmd[cmd.index("--size") + 1] == str(SIZE)
    assert cmd[cmd.index("--ego-frames") + 1] == str(FRAMES) and "--marker" in cmd
    for kind in DAMAGE_KINDS:
        cmd += ["--damaged", kind]
    assert main(cmd) == 0
    return root


def test_render_index_and_read_back_against_the_truth(release, tmp_path, capsys):
    pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core import calibration, mps

    from syn2seq_core.io.video import read_video

    index = tmp_path / "index.jsonl"
    capsys.readouterr()
    cmd = doc_command("syn2seq index-egoexo4d ROOT --out index.jsonl")
    assert main([str(release) if a == "ROOT" else str(index) if a == "index.jsonl" else a for a in cmd]) == 0
    printed = capsys.readouterr().out
    header = read_egoexo4d_index_header(index)
    assert header["counts"] == {"indexed": TAKES, **WANT_SKIPS}, header["counts"]
    assert header["version"] == 2 and "turned 90 degrees clockwise" in header["conventions"]["aria_orientation"]
    assert header["conventions"]["frame_timing"] == "frame i = timesync.csv row timesync_start_idx + 1 + i"
    for reason, n in WANT_SKIPS.items():
        assert f"{reason}" in printed and str(n) in printed
    cfg = SyntheticConfig(size=SIZE, exo_frames=8, ego_frames=FRAMES, fps=8.0, supersample=1)  # the command's
    seeds = {t["take_name"]: t["syn2seq_seed"] for t in json.loads((release / "takes.json").read_text())}
    worst = {"ego_rot_deg": 0.0, "ego_centre_m": 0.0, "ego_K": 0.0, "exo_rot_deg": 0.0, "exo_centre_m": 0.0,
             "exo_K": 0.0, "marker_px": 0.0}
    for entry in read_egoexo4d_index(index):
        take = load_indexed_take(release, entry, camera="cam01")
        scene = sample_scene(seeds[entry.take_name], cfg)
        times = torch.arange(FRAMES, dtype=torch.float32) / cfg.fps
        truth_ego = ego_c2w(scene, times)[0].to(torch.float64)
        ego = take.ego_cameras
        for i in range(FRAMES):
            worst["ego_rot_deg"] = max(worst["ego_rot_deg"], _angle_deg(ego.c2w[i, :3, :3], truth_ego[i, :3, :3]))
            worst["ego_centre_m"] = max(worst["ego_centre_m"], float((ego.c2w[i, :3, 3] - truth_ego[i, :3, 3]).norm()))
        raw = mps.read_online_calibration(str(release / entry.root_dir / "trajectory" / "online_calibration.jsonl"))
        turned = calibration.rotate_camera_calib_cw90deg(raw[0].get_camera_calib("camera-rgb"))
        f, cx, cy = turned.get_projection_params()[:3]
        w, h = turned.get_image_size()
        video = turned.rescale(np.array([SIZE, SIZE]), SIZE / w)  # the stored frames' size
        want_K = torch.tensor([f / w, f / h, (cx + 0.5) / w, (cy + 0.5) / h], dtype=torch.float64)
        worst["ego_K"] = max(worst["ego_K"], float((ego.K - want_K).abs().max()))
        exo = take.exo_cameras
        worst["exo_rot_deg"] = max(worst["exo_rot_deg"], _angle_deg(exo.c2w[0, :3, :3], scene.exo_c2w[0, :3, :3].double()))
        worst["exo_centre_m"] = max(worst["exo_centre_m"], float((exo.c2w[0, :3, 3] - scene.exo_c2w[0, :3, 3]).norm()))
        worst["exo_K"] = max(worst["exo_K"], float((exo.K[0] - scene.exo_K[0].double()).abs().max()))
        # the marker: painted at raw pixel MARKER_RAW_PX; its ray, 1 m deep, projects onto it in the stored frame
        frames = read_video(take.ego_video)
        col_raw, row_raw = int(MARKER_RAW_PX[0] * SIZE), int(MARKER_RAW_PX[1] * SIZE)
        for i in range(FRAMES):
            col, row = _marker_centre(frames[i])
            assert (col, row) == (SIZE - 1 - row_raw, col_raw)  # the tutorial's x = W - 1 - y_raw, y = x_raw
            # the marker's ray by projectaria_tools' turned calibration, 1 m deep, from the world's true pose
            p_cam = torch.from_numpy(np.asarray(video.unproject_no_checks(np.array([col, row], float))))
            world = truth_ego[i, :3, :3] @ (p_cam / p_cam[2]) + truth_ego[i, :3, 3]
            err = float(np.abs(_project(ego, i, world) - (np.array([col, row]) + 0.5)).max())
            worst["marker_px"] = max(worst["marker_px"], err)
    print("recovered vs truth (worst over takes and frames):", worst)
    # measured: ego 9.5e-14 deg, 3.9e-10 m, K exact; exo 2.5e-15 deg, 0 m, K exact; marker 6.3e-7 px
    assert worst["ego_rot_deg"] < 1e-9 and worst["ego_centre_m"] < 1e-8 and worst["ego_K"] < 1e-12
    assert worst["exo_rot_deg"] < 1e-9 and worst["exo_centre_m"] < 1e-8 and worst["exo_K"] < 1e-12
    assert worst["marker_px"] < 1e-5


def test_the_bench_command_of_the_docs_runs(capsys):
    """``syn2seq bench egoexo4d`` as in docs/egoexo4d.md, at sizes a test can afford."""
    cmd = doc_command("syn2seq bench egoexo4d")
    assert cmd[:2] == ["bench", "egoexo4d"] and "--takes" in cmd and "--prepare" in cmd
    assert main(["bench", "egoexo4d", "--takes", "2", "4", "--prepare", "2", "--base", "1", "--frames", "4",
                 "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "index ms/take" in out and "load ms/take" in out and "prepare ms/take" in out
    rows = [ln for ln in out.splitlines() if ln.strip().startswith(("2 |", "4 |"))]
    assert len(rows) == 2


def test_every_indexed_take_runs_through_exo2ego_and_eval_with_the_default_model(release, tmp_path):
    """Real takes have no exo depth: the docs' exo2ego and eval commands, with the pack's default model, on every
    take the index lists (the bundled model runs without its depth cue, MODEL_CARD.md)."""
    from syn2seq_core.generation.pipeline import load_model

    assert load_model().cue_optional
    index = tmp_path / "index.jsonl"
    assert main(["index-egoexo4d", str(release), "--out", str(index)]) == 0
    entries = read_egoexo4d_index(index)
    assert len(entries) == TAKES
    names = {"index.jsonl": str(index), "ROOT": str(release)}
    for entry in entries:
        out = tmp_path / "out" / entry.take_name
        cmd = doc_command("syn2seq exo2ego --index")
        argv = [{**names, "TAKE_NAME": entry.take_name, "OUT": str(out)}.get(a, a) for a in cmd]
        assert main(argv + ["--steps", "2"]) == 0
        report = json.loads((out / "metrics.json").read_text())
        assert report["generated_frames"] == FRAMES and report["metrics"]["psnr"]["mean"] > 5
    cmd = doc_command("syn2seq eval --index")
    report = tmp_path / "reports" / "val.json"
    argv = [names.get(a, a) for a in cmd]
    argv[argv.index("--out") + 1] = str(report)
    assert main(argv + ["--steps", "2"]) == 0
    assert json.loads(report.read_text())["summary"]["takes"] == TAKES
