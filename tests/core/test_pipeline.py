"""The generator as users call it: model files, generate(), takes in and videos/metrics out, the CLI."""

import json

import pytest
import torch

from syn2seq_core.base import conventions as C
from syn2seq_core.cli import main
from syn2seq_core.data.synthetic import SyntheticConfig, render_take
from syn2seq_core.data.takes import load_take, write_take
from syn2seq_core.dfot.checkpoint import save_model
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.generation.takes import generate_take, run_take
from syn2seq_core.generation.pipeline import build_network, load_model
from syn2seq_core.generation.sequence import build_sequence
from syn2seq_core.io.video import probe_video

SIZE = 16
MODEL = {"preset": "tiny", "height": SIZE, "width": SIZE, "patch_size": 4, "dim": 48, "depth": 2, "heads": 2,
         "max_frames": 8}
DATA = {"size": SIZE, "exo_frames": 3, "ego_frames": 3, "transition_frames": 2}


def write_random_model(path, model: dict, data: dict, noise: float = 0.02):
    """A small random-weight model file with a training record (``model``/``data`` config tables)."""
    torch.manual_seed(0)
    net = build_network(model)
    # Non-zero outputs, so that generated frames depend on the model (zero-init would give v = 0).
    with torch.no_grad():
        for p in net.parameters():
            p.add_(noise * torch.randn_like(p))
    info = {"config": {"noise_shift": 1.0, "data": data, "model": model}, "step": 0}
    save_model(path, net, extra_metadata={"training": json.dumps(info)})
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_random_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", MODEL, DATA)


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("takes")
    cfg = SyntheticConfig(size=32, supersample=1, exo_frames=3, ego_frames=3)
    for i in range(2):
        t = render_take(1000 + i, cfg)
        write_take(root / f"take_{i}", t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras, fps=8)
    return root


def small_sequence(n_ego=3, n_exo=3):
    t = render_take(7, SyntheticConfig(size=SIZE, supersample=1, exo_frames=n_exo, ego_frames=n_ego))
    return build_sequence(t.exo_cameras, t.ego_cameras, exo_frames=t.exo_frames, n_transition=2)


def test_model_file_round_trip_keeps_schedule_and_training_info(model_path):
    model = load_model(model_path)
    assert model.size == (SIZE, SIZE) and model.window == 8
    assert model.schedule.shift == 1.0 and model.transition_frames == 2


def test_generate_keeps_context_and_fills_the_rest(model_path):
    model = load_model(model_path)
    seq = small_sequence()
    calls = []
    out = model.generate(seq, steps=4, seed=1, callback=calls.append)
    assert [c["step"] for c in calls] == [1, 2, 3, 4] and calls[0]["total"] == 4
    assert torch.equal(out.frames[:3], seq.frames[:3])
    assert out.known.all() and (out.context_mask[3:] == C.MASK_GENERATED_CONTEXT).all()
    assert out.frames.min() >= 0 and out.frames.max() <= 1 and out.frames[3:].std() > 0
    again = model.generate(seq, steps=4, seed=1)
    assert torch.equal(out.frames, again.frames)
    assert not torch.equal(out.frames, model.generate(seq, steps=4, seed=2).frames)


def test_generate_is_cancellable_from_the_callback(model_path):
    model = load_model(model_path)

    def cancel(info):
        if info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.generate(small_sequence(), steps=5, callback=cancel)


def test_long_sequences_roll_out_in_windows(model_path):
    model = load_model(model_path)
    seq = small_sequence(n_ego=6)  # 3 + 2 + 6 = 11 frames > window 8
    out = model.generate(seq, steps=3, guidance="vanilla", guidance_scale=2.0)
    assert len(out) == 11 and out.known.all() and torch.equal(out.frames[:3], seq.frames[:3])


def test_mean_prediction_and_wrong_size(model_path):
    model = load_model(model_path)
    seq = small_sequence()
    a, b = model.predict_mean(seq), model.predict_mean(seq)
    assert torch.equal(a.frames, b.frames)
    t = render_take(7, SyntheticConfig(size=8, supersample=1, exo_frames=3, ego_frames=3))
    wrong = build_sequence(t.exo_cameras, t.ego_cameras, exo_frames=t.exo_frames)
    with pytest.raises(Syn2SeqInputError, match="model's size"):
        model.generate(wrong)


def test_mean_over_draws_is_the_average_of_one_shot_predictions(model_path):
    model = load_model(model_path)
    seq = small_sequence()
    singles = [model.predict_mean(seq, seed=s).frames for s in (5, 6, 7)]
    avg = model.predict_mean(seq, seed=5, draws=3)
    assert torch.allclose(avg.frames, torch.stack(singles).mean(0), atol=1e-6)
    ctx = seq.context_mask >= C.MASK_CONTEXT
    assert torch.equal(avg.frames[ctx], seq.frames[ctx])  # context frames untouched
    assert not torch.equal(singles[0][~ctx], singles[1][~ctx])  # the draws differ where generated
    with pytest.raises(Syn2SeqInputError, match="draws"):
        model.predict_mean(seq, draws=0)


def test_missing_model_file_is_explained(tmp_path):
    with pytest.raises(Syn2SeqInputError, match="models/syn2seq"):
        load_model(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
def test_take_in_video_and_metrics_out(model_path, takes, tmp_path, direction):
    model = load_model(model_path)
    take = load_take(takes / "take_0")
    paths = run_take(take, model, direction, tmp_path / direction, steps=2)["paths"]
    tgt = direction[-3:]
    info = probe_video(paths["video"])
    gt = probe_video(takes / "take_0" / f"{tgt}.mp4")
    assert (info.frames, info.width, info.height) == (gt.frames, gt.width, gt.height)
    report = json.loads(paths["metrics"].read_text())
    assert report["metrics"]["frames"] == 3 and isinstance(report["metrics"]["psnr"]["mean"], float)
    assert report["metrics"]["lpips_alex"].startswith("unavailable")
    assert probe_video(paths["side_by_side"]).frames == 3
    assert not list((tmp_path / direction).glob(".*"))  # no partial files left behind


def test_take_without_ground_truth(model_path, takes, tmp_path):
    src = load_take(takes / "take_1")
    frames, cams = src.read_view("exo")
    write_take(tmp_path / "inference", frames, cams, None, src.cameras("ego"), fps=8)
    result = generate_take(load_take(tmp_path / "inference"), load_model(model_path), steps=2)
    assert result.target is None and result.metrics is None
    paths = run_take(load_take(tmp_path / "inference"), load_model(model_path), "exo2ego", tmp_path / "out",
                     steps=2)["paths"]
    assert "unavailable" in json.loads(paths["metrics"].read_text())["metrics"]
    assert probe_video(paths["video"]).frames == 3


def test_cli_exo2ego_and_eval(model_path, takes, tmp_path, capsys):
    assert main(["exo2ego", "--take", str(takes / "take_0"), "--model", str(model_path), "--out",
                 str(tmp_path / "cli"), "--steps", "2", "--mean", "--mean-draws", "2"]) == 0
    assert (tmp_path / "cli" / "ego_generated.mp4").exists()
    # --mean: the conditional mean as a video of the same size and frames, scored next to the sample.
    mean_info, sample_info = (probe_video(tmp_path / "cli" / f"ego_{k}.mp4") for k in ("mean", "generated"))
    # [exo | sample | mean | ground truth] panels side by side, each at the model's size
    h, w = load_model(model_path).size
    sbs = probe_video(tmp_path / "cli" / "side_by_side.mp4")
    assert sbs.width * h == 4 * w * sbs.height
    assert (mean_info.frames, mean_info.width, mean_info.height) == (sample_info.frames, sample_info.width,
                                                                     sample_info.height)
    written = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert written["mean_metrics"]["psnr"]["mean"] != written["metrics"]["psnr"]["mean"]
    report = tmp_path / "eval.json"
    assert main(["eval", "--takes", str(takes), "--model", str(model_path), "--steps", "2", "--mean",
                 "--out", str(report)]) == 0
    data = json.loads(report.read_text())["summary"]
    assert data["takes"] == 2
    assert set(data["methods"]) >= {"sample", "mean", "copy_last", "flat_color", "mean_target"}
    assert "copy_last" in data["paired_vs_sample"]
    assert set(data["paired_vs_mean"]) == {"sample", "copy_last", "flat_color", "mean_target"}
    assert "PSNR" in capsys.readouterr().out


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    assert main(["exo2ego", "--take", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("data, mode, n_tr", [({"transition": "none"}, "direct", 0),
                                              ({"pose_interpolation": False}, "video_only", 2),
                                              ({}, "exo2ego", 2)])
def test_takes_are_generated_in_the_layout_the_model_was_trained_on(tmp_path, takes, data, mode, n_tr):
    # The ablation's models: a direct model must not get transition frames, a "video only" model must not
    # get transition rays, at inference as in training.
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    info = {"config": {"noise_shift": 1.0, "data": {**DATA, **data}, "model": MODEL}, "step": 0}
    save_model(path, build_network(MODEL), extra_metadata={"training": json.dumps(info)})
    model = load_model(path)
    assert model.sequence_mode("exo2ego") == mode and model.transition_frames == n_tr
    result = generate_take(load_take(takes / "take_0"), model, "exo2ego", steps=2)
    seq = result.sequence
    tr = seq.roles == C.ROLE_TRANSITION
    assert int(tr.sum()) == n_tr and len(result.generated) == 3
    rays = seq.rays(SIZE, SIZE)
    if mode == "video_only":
        assert not bool(seq.pose_known[tr].any()) and float(rays[tr].abs().max()) == 0.0
    assert float(rays[~tr].abs().amax(dim=(1, 2, 3)).min()) > 0  # every real view keeps its rays


def test_compare_reports_pairs_takes_and_refuses_different_takes(model_path, takes, tmp_path, capsys):
    reports = []
    for seed in (0, 1):
        reports.append(tmp_path / f"r{seed}.json")
        assert main(["eval", "--takes", str(takes), "--model", str(model_path), "--steps", "2", "--seed", str(seed),
                     "--eta", str(seed), "--no-baselines", "--out", str(reports[-1])]) == 0
    assert [json.loads(r.read_text())["eta"] for r in reports] == [0.0, 1.0]  # the sampler setting is recorded
    out = tmp_path / "cmp.json"
    assert main(["compare", f"a={reports[0]}", f"b={reports[1]}", "--out", str(out)]) == 0
    cmp = json.loads(out.read_text())
    a, b = (json.loads(r.read_text())["per_take"] for r in reports)
    diffs = [x["methods"]["sample"]["psnr"]["mean"] - y["methods"]["sample"]["psnr"]["mean"] for x, y in zip(a, b)]
    assert cmp["paired"]["a - b"]["psnr"]["mean"] == pytest.approx(sum(diffs) / len(diffs))
    assert "a - b" in capsys.readouterr().out
    # Reports on different takes cannot be paired.
    other = json.loads(reports[1].read_text())
    other["per_take"] = other["per_take"][::-1]
    (tmp_path / "rev.json").write_text(json.dumps(other))
    assert main(["compare", str(reports[0]), str(tmp_path / "rev.json")]) == 2
    assert "same takes in the same order" in capsys.readouterr().err
    assert main(["compare", str(reports[0]), str(reports[1]), "--method", "mean"]) == 2


def test_eval_summary_says_how_much_more_take_specific_the_mean_is_than_each_baseline():
    from syn2seq_core.evaluation.run import TakeScores, summarize

    def report(v):
        return {"psnr": {"mean": v}, "ssim": {"mean": v / 100}, "lpips_alex": "unavailable", "lpips_vgg": "unavailable"}

    # Own - other PSNR gaps: mean 3, 2, 4 dB; copy_last 1, 1, 1 dB -> the mean is 2 dB more specific.
    scores = [TakeScores(f"t{i}", {"mean": report(20.0), "copy_last": report(15.0)},
                         {"mean": 20.0, "copy_last": 15.0}, {"mean": 20.0 - g, "copy_last": 14.0})
              for i, g in enumerate((3.0, 2.0, 4.0))]
    summary = summarize(scores, reference="mean")
    diff = summary["paired_vs_mean"]["copy_last"]
    assert diff["own_minus_other"]["mean"] == pytest.approx(2.0)
    assert diff["own_minus_other"]["ci_low"] < 2.0 < diff["own_minus_other"]["ci_high"]
    assert diff["psnr"]["mean"] == pytest.approx(5.0)


def test_a_model_samples_with_its_recorded_eta_unless_told_otherwise(tmp_path):
    """A model file's ``sampling`` metadata may record its η (the bundled model: 1); generate() without eta uses
    it, an explicit eta wins, and the conditional mean does not depend on it."""
    from syn2seq_core.dfot.checkpoint import build_model, save_state_dict
    from syn2seq_core.dfot.model import DiT3DConfig
    from syn2seq_core.geometry.cameras import Cameras
    from syn2seq_core.generation.pipeline import Syn2SeqModel, load_model
    from syn2seq_core.generation.sequence import build_sequence

    torch.manual_seed(0)
    net = build_model(DiT3DConfig(height=16, width=16, dim=32, depth=1, heads=2, max_frames=8))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = save_state_dict(tmp_path / "m.safetensors", net.state_dict(), net.config,
                           extra_metadata={"sampling": {"eta": 1.0}})
    model = load_model(path)
    assert model.default_eta == 1.0 and model.default_steps == 25
    assert load_model(save_state_dict(tmp_path / "plain.safetensors", net.state_dict(), net.config)).default_eta == 0
    eye = torch.eye(4)[None].repeat(3, 1, 1)
    cams = Cameras(eye, torch.tensor([[1.0, 1.0, 0.5, 0.5]]).repeat(3, 1), 16, 16)
    seq = build_sequence(cams, cams, exo_frames=torch.rand(3, 3, 16, 16), n_transition=2)
    default = model.generate(seq, steps=3).frames
    torch.testing.assert_close(default, model.generate(seq, steps=3, eta=1.0).frames)
    assert not torch.allclose(default, model.generate(seq, steps=3, eta=0.0).frames)
    torch.testing.assert_close(model.predict_mean(seq).frames, Syn2SeqModel(model.network).predict_mean(seq).frames)
