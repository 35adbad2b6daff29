"""`syn2seq eval` as a paper publishes it (issue 30): one evaluation resolution and one filter for every method
(--eval-size), other systems' videos scored without a model (--no-model), the PSNR cap in every output, and every
input checked (and every output staged) before work, so that a run completes or leaves nothing new."""

from __future__ import annotations

import csv
import json
import shutil
import time

import pytest
import torch

from syn2seq_core.cli import main
from syn2seq_core.data.synthetic import SyntheticConfig, render_take
from syn2seq_core.data.takes import load_take, write_take
from syn2seq_core.evaluation.resolution import EVAL_FILTER, to_eval_size
from syn2seq_core.io.video import read_video, write_video

from .test_pipeline import DATA, MODEL, write_random_model

NAMES = ("take_0", "take_1", "take_2")
EGO_FRAMES = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three takes rendered at 48x48 (so that 32 is a downscale and 64 an upscale of the ground truth), another
    system's videos (the ground truth plus noise), a perfect system's (the ground truth itself) and two random
    models of different sizes (16x16 and 32x32)."""
    root = tmp_path_factory.mktemp("eval_resolution")
    takes = root / "takes"
    cfg = SyntheticConfig(size=48, supersample=1, exo_frames=3, ego_frames=EGO_FRAMES)
    for i, name in enumerate(NAMES):
        t = render_take(3000 + i, cfg)
        write_take(takes / name, t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras, fps=8)
    other, exact = root / "other", root / "exact"
    g = torch.Generator().manual_seed(0)
    for name in NAMES:
        frames = read_video(takes / name / "ego.mp4")
        write_video(other / f"{name}.mp4", (frames + 0.05 * torch.randn(frames.shape, generator=g)).clamp(0, 1), fps=8)
        (exact / name).mkdir(parents=True)
        shutil.copy(takes / name / "ego.mp4", exact / name / "ego.mp4")  # identical frames: PSNR would be inf
    big = {**MODEL, "height": 32, "width": 32}
    return {"root": root, "takes": takes, "other": other, "exact": exact,
            "small": write_random_model(root / "m16.safetensors", MODEL, DATA),
            "big": write_random_model(root / "m32.safetensors", big, {**DATA, "size": 32})}


def _eval(world, out, *extra):
    return main(["eval", "--takes", str(world["takes"]), "--out", str(out), *extra])


def test_the_filter_is_pils_bicubic_after_a_centre_crop():
    """EVAL_FILTER says PIL's BICUBIC: Pillow's ``Image.resize(..., Image.BICUBIC)`` on float ('F') images is the
    reference, shrinking (48 -> 32) and enlarging (24 -> 64); a 60x40 frame is first cut to its central 40x40."""
    import numpy as np
    from PIL import Image

    assert "bicubic" in EVAL_FILTER and "centre crop" in EVAL_FILTER
    g = torch.Generator().manual_seed(0)
    for side, size in ((48, 32), (24, 64)):
        frame = torch.rand(3, side, side, generator=g)
        ours = to_eval_size(frame[None], (size, size))[0]
        for c in range(3):
            ref = Image.fromarray(frame[c].numpy().astype(np.float32)).resize((size, size), Image.BICUBIC)
            torch.testing.assert_close(ours[c], torch.from_numpy(np.array(ref)).clamp(0, 1), atol=2e-5, rtol=0)
    wide = torch.rand(1, 3, 40, 60, generator=g)  # asymmetric content: any other crop would differ
    assert torch.equal(to_eval_size(wide, (40, 40)), wide[..., 10:50])
    tall = wide.transpose(-1, -2)
    assert torch.equal(to_eval_size(tall, (40, 40)), tall[..., 10:50, :])


def test_two_model_sizes_are_scored_at_one_resolution(world):
    """The same takes with a 16x16 and a 32x32 model at --eval-size 32: everything not made by the model (the
    baselines, the other system) scores exactly the same in both reports, and the size is recorded; at each
    model's own size (--eval-size model) the same baselines score differently."""
    reports = {}
    for size in ("32", "model"):
        for name in ("small", "big"):
            out = world["root"] / f"r_{name}_{size}.json"
            assert _eval(world, out, "--model", str(world[name]), "--steps", "1", "--eval-size", size,
                         "--videos", f"other={world['other']}") == 0
            reports[name, size] = json.loads(out.read_text())
    for name in ("small", "big"):
        assert reports[name, "32"]["eval_size"]["width"] == 32 and reports[name, "32"]["eval_size"]["mode"] == "fixed"
        assert "bicubic" in reports[name, "32"]["eval_size"]["resize"]
    assert reports["small", "model"]["eval_size"]["width"] == 16 and reports["big", "model"]["eval_size"]["width"] == 32

    def take_means(report, method):
        return [t["methods"][method]["psnr"]["mean"] for t in report["per_take"]]

    for method in ("copy_last", "flat_color", "other"):
        assert take_means(reports["small", "32"], method) == take_means(reports["big", "32"], method)
        assert take_means(reports["small", "model"], method) != take_means(reports["big", "model"], method)
    # syn2seq compare pairs reports of one evaluation size only
    assert main(["compare", f"a={world['root'] / 'r_small_32.json'}", f"b={world['root'] / 'r_big_32.json'}",
                 "--method", "copy_last"]) == 0
    assert main(["compare", f"a={world['root'] / 'r_small_model.json'}",
                 f"b={world['root'] / 'r_big_model.json'}"]) == 2
    md = (world["root"] / "r_small_32.md").read_text()
    assert "Evaluated at 32x32 pixels" in md and "capped at 100 dB" in md


def test_other_systems_are_scored_without_a_model(world, capsys):
    out = world["root"] / "foreign.json"
    assert _eval(world, out, "--no-model", "--videos", f"other={world['other']}", "--limit", "2") == 0
    data = json.loads(out.read_text())
    assert data["model"] is None and data["eval_size"] == {**data["eval_size"], "width": 256, "height": 256}
    assert set(data["summary"]["methods"]) == {"copy_last", "flat_color", "other"}  # mean_target needs a model
    assert data["reference"] == "other" and set(data["summary"]["paired_vs_other"]) == {"copy_last", "flat_color"}
    psnr = {m: e["psnr"]["mean"] for m, e in data["summary"]["methods"].items()}
    assert psnr["other"] > max(psnr["copy_last"], psnr["flat_color"]) + 5
    rows = list(csv.DictReader(out.with_suffix(".csv").read_text().splitlines()))
    assert [r["method"] for r in rows] == ["copy_last", "flat_color", "other"]
    for flag in (["--model", str(world["small"])], ["--mean"], ["--eval-size", "model"]):
        capsys.readouterr()
        assert _eval(world, world["root"] / "refused.json", "--no-model", *flag) == 2
        assert "--no-model" in capsys.readouterr().err or "--eval-size" in flag
    assert not (world["root"] / "refused.json").exists()


def test_identical_frames_score_the_cap_in_every_output(world):
    """A perfect system (PSNR inf per frame) scores 100 dB: a finite mean with its CI in the JSON, the CSV, the
    Markdown and LaTeX tables (whose notes state the cap), and its curve in the per-frame plot."""
    out = world["root"] / "exact" / "report.json"
    out.parent.mkdir(exist_ok=True)
    assert _eval(world, out, "--no-model", "--eval-size", "32", "--videos", f"exact={world['exact']}") == 0
    data = json.loads(out.read_text())
    assert data["psnr_cap_db"] == 100.0 and "capped at 100 dB" in data["psnr"]
    for take in data["per_take"]:
        assert take["methods"]["exact"]["psnr"]["per_frame"] == [100.0] * EGO_FRAMES
    entry = data["summary"]["methods"]["exact"]["psnr"]
    assert (entry["mean"], entry["ci_low"], entry["ci_high"]) == (100.0, 100.0, 100.0)
    assert data["frame_curves"]["exact"]["psnr"]["mean"] == [100.0] * EGO_FRAMES
    row = next(r for r in csv.DictReader(out.with_suffix(".csv").read_text().splitlines()) if r["method"] == "exact")
    assert float(row["psnr"]) == 100.0 and float(row["psnr_ci_high"]) == 100.0
    md, tex = out.with_suffix(".md").read_text(), out.with_suffix(".tex").read_text()
    assert "| all | exact | 3 | 100.00 ± 0.00 |" in md and "capped at 100 dB" in md
    assert r"exact & 3 & 100.00 $\pm$ 0.00" in tex and "capped at 100 dB" in tex
    assert "| exact | 100.00 ± 0.00 |" in out.with_name("report_by_category.md").read_text()


def test_the_frame_plot_draws_every_method_it_lists(world):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from syn2seq_core.evaluation.reports import frame_curves_figure

    data = json.loads((world["root"] / "exact" / "report.json").read_text())
    fig = frame_curves_figure(data["frame_curves"])
    try:
        lines = fig.axes[0].get_lines()
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert legend == [line.get_label() for line in lines] == ["copy_last", "flat_color", "exact"]
        exact = next(line for line in lines if line.get_label() == "exact")
        assert list(exact.get_ydata()) == [100.0] * EGO_FRAMES
    finally:
        plt.close(fig)
    assert (world["root"] / "exact" / "report_frames.png").read_bytes()[:4] == b"\x89PNG"


def _untouched(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else None


@pytest.mark.parametrize("damage", ["short", "undecodable"])
def test_a_bad_video_stops_eval_before_the_model_loads_and_writes_nothing(world, tmp_path, capsys, monkeypatch,
                                                                          damage):
    """Every other system's video is decoded through the frames its take needs before the model loads; a take
    late in the list with a short or damaged video stops the run with nothing written."""
    from syn2seq_core.generation import pipeline

    videos = tmp_path / "videos"
    shutil.copytree(world["other"], videos)
    bad = videos / f"{NAMES[-1]}.mp4"
    if damage == "short":
        write_video(bad, torch.rand(2, 3, 48, 48), fps=8)  # 2 of the 4 frames
    else:
        data = bad.read_bytes()
        bad.write_bytes(data[:48] + bytes(len(data) - 48))  # the header survives, the frames do not
    monkeypatch.setattr(pipeline, "load_model", lambda *a, **k: pytest.fail("the model loaded before the check"))
    out, written = tmp_path / "report" / "eval.json", tmp_path / "written"
    capsys.readouterr()
    start = time.monotonic()
    code = main(["eval", "--takes", str(world["takes"]), "--model", str(world["small"]), "--steps", "1",
                 "--videos", f"wan={videos}", "--write-videos", str(written), "--out", str(out)])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and f"--videos wan '{bad}'" in err and NAMES[-1] in err, err
    assert ("2 frames" in err) if damage == "short" else ("decod" in err)
    assert not out.parent.exists() and not written.exists()
    print(f"{damage} video refused in {elapsed:.2f} s: {err.strip().splitlines()[-1]}")


def test_a_failure_while_scoring_leaves_nothing_new(world, tmp_path, capsys, monkeypatch):
    """--write-videos folders and the report are staged and moved into place only after the last take: an error
    at the last take leaves an earlier result folder as it was and writes no new file."""
    from syn2seq_core.evaluation import run as evaluation
    from syn2seq_core.base.errors import Syn2SeqInputError

    written = tmp_path / "written"
    (written / NAMES[0]).mkdir(parents=True)
    (written / NAMES[0] / "metrics.json").write_text("{}")  # an earlier result set: replaced only on success
    real = evaluation.score_take

    def failing(take, *args, **kwargs):
        if take.name == NAMES[-1]:
            raise Syn2SeqInputError(f"take '{take.name}'", "a take that scores", "a failure (test)")
        return real(take, *args, **kwargs)

    monkeypatch.setattr(evaluation, "score_take", failing)
    before = _untouched(written)
    out = tmp_path / "eval.json"
    assert main(["eval", "--takes", str(world["takes"]), "--model", str(world["small"]), "--steps", "1",
                 "--write-videos", str(written), "--out", str(out)]) == 2
    assert _untouched(written) == before and list(tmp_path.iterdir()) == [written]
    monkeypatch.setattr(evaluation, "score_take", real)
    assert main(["eval", "--takes", str(world["takes"]), "--model", str(world["small"]), "--steps", "1",
                 "--write-videos", str(written), "--out", str(out)]) == 0
    assert sorted(p.name for p in written.iterdir()) == list(NAMES)
    assert json.loads((written / NAMES[0] / "metrics.json").read_text())["take"] == NAMES[0]
    assert out.exists() and out.with_suffix(".tex").exists()


def test_a_take_the_model_cannot_run_stops_eval_before_any_generation(world, tmp_path, capsys, monkeypatch):
    """A depth_warp model trained with the cue always present (the bundled weights with a record of no cue
    dropout, as the stage-7 bundled model was) refuses takes without depth once it has loaded, before the first
    take is generated, naming the model and the take."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from syn2seq_core.generation import takes as generation
    from syn2seq_core.generation.pipeline import BUNDLED_MODEL, load_model

    if not BUNDLED_MODEL.exists():
        pytest.skip("needs the bundled depth-cue model")
    needs_depth = tmp_path / "needs_depth.safetensors"
    with safe_open(str(BUNDLED_MODEL), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    record = json.loads(meta["training"])
    record["config"]["data"]["cue_dropout_prob"] = 0.0
    save_file(tensors, str(needs_depth), metadata={**meta, "training": json.dumps(record)})
    assert not load_model(needs_depth).cue_optional
    monkeypatch.setattr(generation, "iter_take", lambda *a, **k: pytest.fail("a take was generated"))
    capsys.readouterr()
    out = tmp_path / "eval.json"
    assert main(["eval", "--takes", str(world["takes"]), "--model", str(needs_depth), "--eval-size", "64",
                 "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"model '{needs_depth}'" in err and f"take '{world['takes'] / NAMES[0]}' without exo depth" in err
    assert not out.exists()


def test_a_take_alone_is_scored_without_ci(world, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(world["takes"] / NAMES[0], one / NAMES[0])
    out = tmp_path / "one.json"
    assert main(["eval", "--takes", str(one), "--no-model", "--eval-size", "32", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["summary"]["takes"] == 1 and "no confidence interval" in data["summary"]["ci"]
    assert data["summary"]["own_minus_other_psnr"] == {}  # no other take to compare with
    assert "| all | copy_last | 1 |" in out.with_suffix(".md").read_text()
    assert "† one take" in out.with_suffix(".md").read_text()


def test_eval_size_is_checked(world, tmp_path, capsys):
    for value, match in (("8", "[16, 4096]"), ("abc", "N (an N x N square)"), ("64x32", "aspect ratio")):
        capsys.readouterr()
        assert _eval(world, tmp_path / "x.json", "--model", str(world["small"]), "--eval-size", value) == 2
        assert match in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    assert load_take(world["takes"] / NAMES[0]).num_frames("ego") == EGO_FRAMES
