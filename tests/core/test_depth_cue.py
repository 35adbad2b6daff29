"""The depth_warp cue: the source view splatted into every frame's camera by its depth, what a network with
``cue = "depth_warp"`` reads beside its rays. Warping, the sequence's cue, takes' depth files, the grown
weights of a finetune from a model without a cue, and generation from a take."""

import json

import pytest
import torch

from syn2seq_core.cli import main
from syn2seq_core.data.synthetic import SyntheticConfig, render_takes
from syn2seq_core.data.takes import load_take, write_take
from syn2seq_core.dfot.checkpoint import build_model
from syn2seq_core.dfot.model import DiT3DConfig, cue_weights
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.generation.takes import generate_take, take_sequence
from syn2seq_core.geometry.cameras import Cameras, look_at
from syn2seq_core.geometry.reproject import forward_warp
from syn2seq_core.generation.pipeline import HELDOUT_SEED_BASE, Syn2SeqModel, sequence_ray_input
from syn2seq_core.generation.sequence import build_sequence

WORLD = SyntheticConfig(size=32, supersample=2, exo_frames=3, ego_frames=3)
TINY = dict(height=32, width=32, dim=32, depth=1, heads=2, max_frames=8)


@pytest.fixture(scope="module")
def takes():
    return render_takes([HELDOUT_SEED_BASE + i for i in range(4)], WORLD, depth=True)


def test_a_plane_moves_by_focal_times_baseline_over_depth():
    """A fronto-parallel plane at z = 2 m seen from a camera moved 0.25 m to the right shifts left by
    fx * 0.25 / 2 = 4 pixels of 32 (fx = 1 in normalised units)."""
    image = torch.rand(1, 3, 32, 32)
    depth = torch.full((1, 32, 32), 2.0)
    K = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    src = torch.eye(4)[None]
    dst = src.clone()
    dst[0, 0, 3] = 0.25
    warped, coverage = forward_warp(image, depth, K, src, K, dst, 32, 32)
    assert coverage[0, 0, :, :28].all() and not coverage[0, 0, :, 28:].any()
    torch.testing.assert_close(warped[0, :, :, :28], image[0, :, :, 4:])
    same, full = forward_warp(image, depth, K, src, K, src, 32, 32)
    assert full.all()
    torch.testing.assert_close(same, image)


def test_the_nearest_point_wins_and_invalid_depths_are_dropped():
    image = torch.zeros(1, 3, 4, 4)
    image[0, :, :, :2] = 1.0  # left half white at 1 m, right half black at 3 m
    depth = torch.tensor([[1.0, 1.0, 3.0, 3.0]]).expand(4, 4).clone()[None]
    K = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    eye = torch.eye(4)[None]
    warped, _ = forward_warp(image, depth, K, eye, K, eye, 4, 4)
    torch.testing.assert_close(warped, image)
    depth[0, 0, 0], depth[0, 1, 1] = float("nan"), -1.0
    _, coverage = forward_warp(image, depth, K, eye, K, eye, 4, 4)
    assert coverage.sum() == 14 and coverage[0, 0, 0, 0] == 0 and coverage[0, 0, 1, 1] == 0


def test_the_warped_exo_view_predicts_the_ego_view_of_the_renderer(takes):
    """Where the exo view's points land, the warp shows what the ego camera sees: its error there is a small
    fraction of the error of a flat fill with the exo view's mean colour (the renderer's exact depth; about 0.6x
    over 32 held-out takes)."""
    B, T = takes.exo_frames.shape[:2]
    warped, coverage = forward_warp(takes.exo_frames.flatten(0, 1), takes.exo_depth.flatten(0, 1),
                                    takes.exo_K.flatten(0, 1), takes.exo_c2w.flatten(0, 1),
                                    takes.ego_K.flatten(0, 1), takes.ego_c2w.flatten(0, 1), 32, 32)
    ego = takes.ego_frames.flatten(0, 1)
    flat = takes.exo_frames.flatten(0, 1).mean(dim=(2, 3), keepdim=True)
    m = coverage.bool().expand_as(ego)
    assert coverage.mean() > 0.2
    warp_err = (warped - ego).abs()[m].mean()
    flat_err = (flat.expand_as(ego) - ego).abs()[m].mean()
    assert warp_err < 0.75 * flat_err, (float(warp_err), float(flat_err))


def sequence_of(takes, i=0, **kw):
    size = WORLD.size
    exo = Cameras(takes.exo_c2w[i], takes.exo_K[i], size, size)
    ego = Cameras(takes.ego_c2w[i], takes.ego_K[i], size, size)
    return build_sequence(exo, ego, exo_frames=takes.exo_frames[i], ego_frames=takes.ego_frames[i],
                          n_transition=2, **kw)


def test_the_sequence_cue_warps_the_synchronous_source_frame_and_windows_keep_it(takes):
    seq = sequence_of(takes).with_depth_cue(takes.exo_depth[0])
    assert seq.cue.shape == (8, 4, 32, 32)
    assert seq.cue_sources().tolist() == [0, 1, 2, 2, 2, 0, 1, 2]  # exo | transition: last exo | ego k: exo k
    torch.testing.assert_close(seq.cue[:3, :3], takes.exo_frames[0])  # the source sees itself, fully covered
    assert (seq.cue[:3, 3] == 1).all()
    k = 1
    warped, coverage = forward_warp(takes.exo_frames[0, k:k + 1], takes.exo_depth[0, k:k + 1], takes.exo_K[0, k:k + 1],
                                    takes.exo_c2w[0, k:k + 1], takes.ego_K[0, k:k + 1], takes.ego_c2w[0, k:k + 1],
                                    32, 32)
    torch.testing.assert_close(seq.cue[5 + k], torch.cat([warped, coverage], 1)[0])
    window = seq.window(2, 6)
    torch.testing.assert_close(window.cue, seq.cue[2:6])
    # Frames without a pose (video_only transitions) have no camera to warp into: zero cue.
    vo = sequence_of(takes, mode="video_only").with_depth_cue(takes.exo_depth[0])
    assert (vo.cue[3:5] == 0).all() and (vo.cue[5:] != 0).any()


def test_the_cue_needs_one_depth_map_per_source_frame(takes):
    seq = sequence_of(takes)
    with pytest.raises(Syn2SeqInputError, match=r"depth.*\[3, h, w\]"):
        seq.with_depth_cue(takes.exo_depth[0, :2])


def test_a_cue_network_reads_the_cue_beside_the_rays_and_refuses_a_sequence_without_it(takes):
    config = DiT3DConfig(**TINY, cue="depth_warp")
    seq = sequence_of(takes)
    with pytest.raises(Syn2SeqInputError, match="depth_warp cue"):
        sequence_ray_input(config, seq)
    x = sequence_ray_input(config, seq.with_depth_cue(takes.exo_depth[0]))
    assert x.shape == (8, 32, 32, 10)
    torch.testing.assert_close(x[..., :6], sequence_ray_input(DiT3DConfig(**TINY), seq))
    assert set(x[..., 9].unique().tolist()) <= {0.0, 1.0}
    assert (x[..., 6:9][x[..., 9] == 0] == 0).all()  # no colour where nothing landed


def test_a_finetune_grown_from_a_network_without_a_cue_starts_out_computing_the_same(takes):
    torch.manual_seed(0)
    plain = build_model(DiT3DConfig(**TINY)).eval()
    for p in plain.parameters():  # non-zero output layers, so the comparison means something
        torch.nn.init.normal_(p, std=0.05)
    grown_config = DiT3DConfig(**TINY, cue="depth_warp")
    grown = build_model(grown_config).eval()
    grown.load_state_dict(cue_weights(plain.state_dict(), grown_config))
    seq = sequence_of(takes).with_depth_cue(takes.exo_depth[0])
    x_t = torch.randn(1, 8, 3, 32, 32)
    logsnr = torch.zeros(1, 8)
    rays = sequence_ray_input(grown_config, seq)[None]
    torch.testing.assert_close(grown(x_t, logsnr, rays), plain(x_t, logsnr, rays[..., :6]))
    state = grown.state_dict()
    assert cue_weights(state, grown_config) is state  # already grown: unchanged


def test_a_uvit_reads_the_cue_with_its_frames_grows_from_a_network_without_one_and_drops_it_with_the_pose():
    """The U-ViT3D-Pose's cue joins the noisy frames at its input convolution (not its FiLM embedding): grown
    from a cue-less network it computes the same; the cue then changes the output, and a dropped pose drops the
    cue too (the same output as an empty cue with that pose dropped)."""
    from syn2seq_core.dfot.uvit3d import UViT3DPoseConfig

    base = dict(height=16, width=16, channels=(32, 48), emb_channels=32, num_heads=2, num_updown_blocks=(1,),
                num_mid_blocks=1, block_types=("ResBlock", "TransformerBlock"), block_dropouts=(0.0, 0.0),
                noise_features=16, max_frames=4)
    torch.manual_seed(0)
    plain = build_model(UViT3DPoseConfig(**base)).eval()
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.05)
    config = UViT3DPoseConfig(**base, cue="depth_warp")
    assert config.cond_channels == 184
    grown = build_model(config).eval()
    grown.load_state_dict(cue_weights(plain.state_dict(), config))
    x_t, logsnr = torch.randn(2, 4, 3, 16, 16), torch.zeros(2, 4)
    rays = torch.cat([torch.randn(2, 4, 16, 16, 180), torch.rand(2, 4, 16, 16, 4)], -1)
    with torch.no_grad():
        torch.testing.assert_close(grown(x_t, logsnr, rays), plain(x_t, logsnr, rays[..., :180]))
        for p in grown.embed_input.parameters():
            torch.nn.init.normal_(p, std=0.05)
        out = grown(x_t, logsnr, rays)
        empty = torch.cat([rays[..., :180], torch.zeros_like(rays[..., 180:])], -1)
        assert (out - grown(x_t, logsnr, empty)).abs().max() > 1e-3  # the cue is read
        drop = torch.tensor([True, False])
        dropped = grown(x_t, logsnr, rays, pose_mask=drop)
        torch.testing.assert_close(dropped[0], grown(x_t, logsnr, empty, pose_mask=drop)[0])
        torch.testing.assert_close(dropped[1], out[1])
        torch.testing.assert_close(grown(x_t, logsnr, None)[0], dropped[0])  # no pose at all: no cue either


def test_takes_store_depth_and_refuse_a_depth_file_that_does_not_fit(tmp_path, takes):
    size = WORLD.size
    exo = Cameras(takes.exo_c2w[0], takes.exo_K[0], size, size)
    ego = Cameras(takes.ego_c2w[0], takes.ego_K[0], size, size)
    take = write_take(tmp_path / "t", takes.exo_frames[0], exo, takes.ego_frames[0], ego, fps=8,
                      depth={"exo": takes.exo_depth[0]})
    assert take.depth("exo").name == "exo_depth.safetensors" and take.depth("ego") is None
    torch.testing.assert_close(take.read_depth("exo"), takes.exo_depth[0], rtol=1e-3, atol=0)
    torch.testing.assert_close(take.read_depth("exo", start=1, stride=2), takes.exo_depth[0, 1::2], rtol=1e-3, atol=0)
    with pytest.raises(Syn2SeqInputError, match="ego depth"):
        take.read_depth("ego")
    from safetensors.torch import save_file

    save_file({"depth": torch.ones(2, 8, 8)}, str(tmp_path / "t" / "ego_depth.safetensors"))
    with pytest.raises(Syn2SeqInputError, match=r"ego depth \(ego_depth.safetensors\).*\[3, h, w\]"):
        load_take(tmp_path / "t")
    (tmp_path / "t" / "ego_depth.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Syn2SeqInputError, match="ego_depth.safetensors.*safetensors file"):
        load_take(tmp_path / "t")


def test_a_depth_file_named_outside_the_take_is_refused(tmp_path, takes):
    size = WORLD.size
    exo = Cameras(takes.exo_c2w[0], takes.exo_K[0], size, size)
    ego = Cameras(takes.ego_c2w[0], takes.ego_K[0], size, size)
    write_take(tmp_path / "t", takes.exo_frames[0], exo, None, ego, fps=8, depth={"exo": takes.exo_depth[0]})
    (tmp_path / "outside.safetensors").write_bytes((tmp_path / "t" / "exo_depth.safetensors").read_bytes())
    doc = json.loads((tmp_path / "t" / "take.json").read_text())
    doc["exo"]["depth"] = "../outside.safetensors"
    (tmp_path / "t" / "take.json").write_text(json.dumps(doc))
    with pytest.raises(Syn2SeqInputError, match="outside|inside"):
        load_take(tmp_path / "t")
    (tmp_path / "t" / "exo_depth.safetensors").unlink()
    (tmp_path / "t" / "exo_depth.safetensors").symlink_to(tmp_path / "outside.safetensors")
    del doc["exo"]["depth"]
    (tmp_path / "t" / "take.json").write_text(json.dumps(doc))
    with pytest.raises(Syn2SeqInputError, match="outside|inside"):
        load_take(tmp_path / "t")


def test_a_cue_model_generates_from_a_rendered_take_and_needs_its_depth(tmp_path):
    torch.manual_seed(0)
    model = Syn2SeqModel(build_model(DiT3DConfig(**TINY, cue="depth_warp")).eval(),
                         info={"config": {"data": {"transition_frames": 2}}})
    assert main(["render-synthetic", "--out", str(tmp_path / "takes"), "--takes", "1", "--size", "32",
                 "--exo-frames", "3", "--ego-frames", "3"]) == 0
    take = load_take(tmp_path / "takes" / "take_00000")
    assert take.read_depth("exo").shape == (3, 64, 64) and take.read_depth("ego").shape == (3, 64, 64)
    seq, _ = take_sequence(take, model)
    assert seq.cue is not None and seq.cue.shape == (8, 4, 32, 32)
    result = generate_take(take, model, steps=2)
    assert result.generated.shape == (3, 3, 32, 32) and result.metrics is not None
    assert main(["render-synthetic", "--out", str(tmp_path / "plain"), "--takes", "1", "--size", "32",
                 "--exo-frames", "3", "--ego-frames", "3", "--no-depth"]) == 0
    plain = load_take(tmp_path / "plain" / "take_00000")
    assert plain.depth("exo") is None
    # a model trained with the cue always present: refused, naming the model and what it needs
    with pytest.raises(Syn2SeqInputError, match="exo depth") as err:
        generate_take(plain, model, steps=2)
    assert "the bundled model" in str(err.value) and "depth_warp cue" in str(err.value)
    assert "cue_dropout_prob" in str(err.value)
    # a model trained with the cue dropped from some sequences: runs on the empty cue, as in its training
    optional = Syn2SeqModel(model.network, info={"config": {"data": {"transition_frames": 2,
                                                                     "cue_dropout_prob": 0.3}}})
    assert optional.cue_optional and not model.cue_optional
    seq, _ = take_sequence(plain, optional)
    assert seq.cue is not None and seq.cue.shape == (8, 4, 32, 32) and not seq.cue.any()
    result = generate_take(plain, optional, steps=2)
    assert result.generated.shape == (3, 3, 32, 32) and torch.isfinite(result.generated).all()
    # a sequence built without any cue (ComfyUI's Build Sequence with no source_depth) samples the same way
    bare, _ = take_sequence(plain, Syn2SeqModel(build_model(DiT3DConfig(**TINY)).eval()))
    assert bare.cue is None
    torch.testing.assert_close(optional.generate(bare, steps=2, seed=3).frames,
                               optional.generate(bare.with_empty_cue(), steps=2, seed=3).frames)
    with pytest.raises(Syn2SeqInputError, match="the bundled model"):
        model.generate(bare, steps=2)


def test_cue_dropout_trains_a_share_of_sequences_on_the_empty_cue(takes):
    """``[data] cue_dropout_prob``: that share of finetune sequences carries the empty cue (zero coverage
    everywhere, so the network's coverage column marks it), the rest the warped source view; 0 draws nothing
    (the random stream of runs without it is unchanged)."""
    from syn2seq_core.training.batches import triplet_sequence
    from syn2seq_core.training.config import DataConfig

    net = DiT3DConfig(**TINY, cue="depth_warp")
    exo = Cameras(takes.exo_c2w[0], takes.exo_K[0], 32, 32)
    ego = Cameras(takes.ego_c2w[0], takes.ego_K[0], 32, 32)
    args = (exo, ego, takes.exo_frames[0], takes.ego_frames[0], None, takes.exo_depth[0], False)
    covered = []
    for prob in (0.0, 0.5, 1.0):
        data = DataConfig(size=32, exo_frames=3, ego_frames=3, transition_frames=2, cue_dropout_prob=prob)
        g = torch.Generator().manual_seed(0)
        covered.append([bool(triplet_sequence(data, net, g, *args)[1][..., -1].any()) for _ in range(40)])
    assert all(covered[0]) and not any(covered[2])
    assert 10 <= sum(covered[1]) <= 30
    g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = triplet_sequence(DataConfig(size=32, exo_frames=3, ego_frames=3, transition_frames=2), net, g0, *args)
    b = triplet_sequence(DataConfig(size=32, exo_frames=3, ego_frames=3, transition_frames=2,
                                    cue_dropout_prob=0.0), net, g1, *args)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and torch.equal(g0.get_state(), g1.get_state())


def test_a_cue_finetune_grows_a_run_without_one_and_its_loss_falls(tmp_path):
    """``cue = "depth_warp"`` finetunes from a run without a cue: the first step's network is the old one (zero
    cue columns), the batches carry the cue, the loss on a fixed batch falls, and the model samples a take."""
    from syn2seq_core.generation.pipeline import load_model
    from syn2seq_core.training.checkpoints import MODEL_NAME, initial_weights
    from syn2seq_core.training.config import load_config
    from syn2seq_core.training.loop import train
    from tests.core.test_train import fixed_batch_loss, write_config

    torch.set_num_threads(1)
    base = load_config(write_config(tmp_path, steps=2, every=2))
    train(base, tmp_path / "base", progress=False)
    text = write_config(tmp_path, steps=12, every=12).read_text().replace(
        "max_frames = 8", 'max_frames = 8\ncue = "depth_warp"').replace(
        "[model]", f'init_from = "{tmp_path / "base" / MODEL_NAME}"\n\n[model]')
    (tmp_path / "cue.toml").write_text(text)
    cfg = load_config(tmp_path / "cue.toml")
    batch, eval_loss = fixed_batch_loss(cfg)
    assert batch.rays.shape[-1] == 10 and (batch.rays[..., 9] == 1).any()
    from syn2seq_core.training.config import network_config

    grown = build_model(network_config(cfg))
    grown.load_state_dict(cue_weights(initial_weights(tmp_path / "base" / MODEL_NAME), grown.config))
    before = eval_loss(grown)
    train(cfg, tmp_path / "cue", progress=False)
    model = load_model(tmp_path / "cue" / MODEL_NAME)
    assert model.config.cue == "depth_warp"
    assert eval_loss(model.network) < before


def test_image_to_video_gives_a_cue_model_the_zero_cue_of_a_single_view():
    """One view only (DFoT's own task): nothing to warp, so a cue model gets the zero cue it saw on single-view
    pretraining clips, through the sliding window and the keyframe passes alike."""
    from syn2seq_core.generation.image2video import image_sequence, image_to_video

    torch.manual_seed(0)
    model = Syn2SeqModel(build_model(DiT3DConfig(**TINY, cue="depth_warp")).eval())
    c2w = torch.eye(4)[None].repeat(12, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 0.5, 12)
    cams = Cameras(c2w, torch.tensor([[1.0, 1.0, 0.5, 0.5]]).repeat(12, 1), 32, 32)
    seq = image_sequence(torch.rand(1, 3, 32, 32), cams)
    for mode in ("sliding", "keyframes"):
        frames = image_to_video(model, seq, mode=mode, steps=2)
        assert frames.shape == (12, 3, 32, 32) and torch.isfinite(frames).all()


def test_depth_from_estimate_follows_its_documented_rule():
    """Relative maps: inverted if ``inverse``, then one scale for the clip puts the median at ``median_m``;
    non-positive values mark no depth; metric maps pass through."""
    from syn2seq_core.geometry.reproject import depth_from_estimate

    true = torch.rand(3, 8, 10) * 4 + 1  # metres
    true[0, 0, 0] = 0.0  # no depth there
    inverse = torch.where(true > 0, 7.0 / true.clamp_min(1e-6), torch.zeros(()))  # any scale
    got = depth_from_estimate(inverse, "inverse", median_m=2.5)
    assert torch.isnan(got[0, 0, 0]) and torch.isfinite(got.flatten()[1:]).all()
    valid = torch.isfinite(got)
    assert abs(float(got[valid].median()) - 2.5) < 1e-4
    ratio = got[valid] / true[valid]
    torch.testing.assert_close(ratio, ratio.mean().expand_as(ratio))  # the true depth up to one scale
    rgb = (true / true.max())[:, None].expand(-1, 3, -1, -1)  # a grey "depth" video decoded as RGB
    got = depth_from_estimate(rgb, "depth", median_m=4.0)
    assert abs(float(got[torch.isfinite(got)].median()) - 4.0) < 1e-4
    torch.testing.assert_close(depth_from_estimate(true[1:], "metric"), true[1:])
    with pytest.raises(Syn2SeqInputError, match="depth kind"):
        depth_from_estimate(true, "disparity")
    with pytest.raises(Syn2SeqInputError, match="some positive values"):
        depth_from_estimate(torch.zeros(2, 4, 4))


def test_a_monocular_depth_video_drives_the_cue_of_a_take_without_depth(tmp_path, takes, capsys):
    """The route for footage without depth: an estimator's inverse-depth video, aligned by the median rule,
    gives the cue of the true depth when its median is right (here: the true one), and `syn2seq exo2ego
    --source-depth` runs a cue model on a take that has no depth file."""
    from syn2seq_core.geometry.reproject import depth_from_estimate
    from syn2seq_core.io.video import write_video

    torch.manual_seed(0)
    net = build_model(DiT3DConfig(**TINY, cue="depth_warp")).eval()
    model = Syn2SeqModel(net, info={"config": {"data": {"transition_frames": 2}}})
    t = takes.take(0)
    write_take(tmp_path / "take", t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras,
               depth={"exo": takes.exo_depth[0]})
    take = load_take(tmp_path / "take")
    truth, _ = take_sequence(take, model)
    exo_depth = take.read_depth("exo")  # as stored (float16)
    disparity = 1.0 / exo_depth
    estimate = depth_from_estimate(disparity / disparity.max(), "inverse", float(exo_depth.median()))
    plain = load_take(write_take(tmp_path / "plain", t.exo_frames, t.exo_cameras, t.ego_frames,
                                 t.ego_cameras).path)
    assert plain.depth("exo") is None
    seq, _ = take_sequence(plain.with_depth("exo", estimate), model)
    torch.testing.assert_close(seq.cue, truth.cue, atol=1e-3, rtol=0)
    with pytest.raises(Syn2SeqInputError, match="one map per frame"):
        plain.with_depth("exo", estimate[:2])
    # the CLI: the same estimate as a grey video (8-bit, so close but not exact) and as a model file
    from syn2seq_core.dfot.checkpoint import save_model

    save_model(tmp_path / "cue.safetensors", net, extra_metadata={
        "training": json.dumps({"config": {"data": {"transition_frames": 2}}})})
    grey = (disparity / disparity.max())[:, None].expand(-1, 3, -1, -1)
    write_video(tmp_path / "depth.mp4", grey, 30.0)
    argv = ["exo2ego", "--take", str(tmp_path / "plain"), "--model", str(tmp_path / "cue.safetensors"),
            "--steps", "2", "--out", str(tmp_path / "out")]
    assert main(argv + ["--source-depth", str(tmp_path / "missing.mp4")]) != 0
    assert "--source-depth" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(argv + ["--source-depth", str(tmp_path / "depth.mp4"), "--source-depth-kind", "inverse",
                        "--source-depth-median", "3.3"]) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["generated_frames"] == 3
