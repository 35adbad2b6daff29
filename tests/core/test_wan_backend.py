"""The ``wan`` interpolator (Wan first-last-frame-to-video through diffusers) and its colour-drift correction.

The model tests build a tiny random-weight Wan 2.1 FLF2V-layout pipeline from configs (transformer with
image conditioning and the FLF image-position table, Wan VAE, a one-layer UMT5 encoder with a word-level
tokenizer written here, a tiny CLIP vision encoder), save it in diffusers' folder layout and load it back
through the backend, also with the transformer as a ComfyUI-named single file. Nothing is downloaded:
every socket connection fails during these tests. Run with ``HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest
import torch

from syn2seq_core.cli import main
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.slerp import transition_times
from syn2seq_core.interpolation import get_interpolator, interpolate, known_interpolators
from syn2seq_core.interpolation.wan import (color_drift, match_color, wan_frames_at, wan_length, wan_size,
                                            wan_to_transition)
from syn2seq_core.io.video import read_image, write_image

STEPS = 2
WORDS = ["<pad>", "</s>", "<unk>", "a", "smooth", "continuous", "camera", "move", "between", "two", "views", "of",
         "the", "same", "scene", "static", "blurry"]
# ComfyUI / original Wan names of the diffusers transformer keys (the reverse of what diffusers' single-file
# converter maps), applied in order to each key.
TO_COMFY = [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
            ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
            ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
            ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
            ("condition_embedder.time_proj", "time_projection.1"),
            ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
            ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
            ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
            ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
            ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
            (".attn1.", ".self_attn."), (".attn2.", ".cross_attn."), (".to_q.", ".q."), (".to_k.", ".k."),
            (".to_v.", ".v."), (".to_out.0.", ".o."), (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."),
            (".norm_added_k.", ".norm_k_img."), (".norm2.", ".norm3."), (".ffn.net.0.proj.", ".ffn.0."),
            (".ffn.net.2.", ".ffn.2."), ("proj_out.", "head.head.")]


def comfy_name(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    for a, b in TO_COMFY:
        key = key.replace(a, b)
    return key.replace(".scale_shift_table", ".modulation")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def pair(h: int = 24, w: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two smooth, different RGB images [3, h, w] in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(2, 3, 4, 5, generator=g)
    up = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    return tuple(0.1 + 0.8 * up.clamp(0, 1))


# --- colour drift: pure functions ---------------------------------------------------------------------------
def fade(first, last, times):
    t = times.to(torch.float32).view(-1, 1, 1, 1)
    return (1 - t) * first + t * last


def test_color_drift_and_match_exact_in_rgb():
    first, last = pair(16, 16)
    first, last = 0.3 + 0.4 * first, 0.3 + 0.4 * last  # in [0.34, 0.66]: no clipping anywhere below
    times = transition_times(3)
    clean = fade(first, last, times)
    cast = torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1)
    assert float(color_drift(clean, first, last, times, "rgb").abs().max()) < 1e-6  # a cross-fade does not drift
    drift = color_drift(clean + cast, first, last, times, "rgb")
    torch.testing.assert_close(drift, torch.full((3,), 0.05), atol=1e-6, rtol=0)  # (0.1 + 0.05 + 0) / 3
    fixed = match_color(clean + cast, first, last, times, "rgb")
    assert fixed.shape == clean.shape and fixed.dtype == clean.dtype
    assert float(color_drift(fixed, first, last, times, "rgb").max()) < 1e-6
    # the spread is matched too: each channel's std becomes the time-interpolated endpoint std
    std = fixed.flatten(-2).std(-1, unbiased=False)
    t = times.float().view(-1, 1)
    target = (1 - t) * first.flatten(-2).std(-1, unbiased=False) + t * last.flatten(-2).std(-1, unbiased=False)
    torch.testing.assert_close(std, target, atol=1e-5, rtol=0)
    # batched [B, n, 3, H, W] gives the same per clip
    fb = match_color(torch.stack([clean + cast] * 2), torch.stack([first] * 2), torch.stack([last] * 2), times, "rgb")
    torch.testing.assert_close(fb[1], fixed)


def test_color_match_in_lab_removes_a_cast():
    first, last = pair(16, 16, seed=1)
    first, last = 0.25 + 0.5 * first, 0.25 + 0.5 * last
    times = transition_times(4)
    clean = fade(first, last, times)
    cast = torch.tensor([0.08, 0.0, -0.08]).view(1, 3, 1, 1)  # warm: more red, less blue
    before = color_drift(clean + cast, first, last, times)
    after = color_drift(match_color(clean + cast, first, last, times), first, last, times)
    base = color_drift(clean, first, last, times)  # Lab is nonlinear: a cross-fade has a small Lab drift
    assert float(before.min()) > 3.0, before  # the cast moves the Lab means by several units
    assert float(after.max()) < 0.05, after  # matched up to float error
    assert float(base.max()) < 1.0 and float(after.max()) < float(base.min())


def test_color_match_checks_its_inputs():
    first, last = pair(8, 8)
    frames = fade(first, last, transition_times(2))
    with pytest.raises(Syn2SeqInputError, match="color space"):
        match_color(frames, first, last, transition_times(2), "hsv")
    with pytest.raises(Syn2SeqInputError, match="one time per frame"):
        match_color(frames, first, last, transition_times(3))
    with pytest.raises(Syn2SeqInputError, match=r"values in \[0, 1\]"):
        color_drift(frames * 255, first, last, transition_times(2))


def test_wan_frames_at_equals_wan_to_transition_and_wan_size():
    clip = torch.linspace(0, 1, 13).view(13, 1, 1, 1).expand(13, 3, 2, 2).contiguous()
    for n in range(1, 12):
        for mode in ("nearest", "linear"):
            assert torch.equal(wan_frames_at(clip, transition_times(n), mode), wan_to_transition(clip, n, mode))
    out = wan_frames_at(clip, torch.tensor([0.01, 0.5, 0.99]), "nearest")  # endpoints never used
    assert [round(float(f[0, 0, 0]) * 12) for f in out] == [1, 6, 11]
    assert wan_size(24, 40) == (32, 48) and wan_size(8, 8) == (16, 16)
    assert wan_size(1080, 1920, 16, 832 * 480) == (480, 832)
    h, w = wan_size(1000, 1000, (16, 32), 200 * 200)
    assert h % 16 == 0 and w % 32 == 0 and h * w <= 200 * 200


# --- the tiny pipeline --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory):
    """A saved tiny Wan 2.1 FLF2V-layout pipeline: (folder, ComfyUI single-file transformer, its state dict)."""
    pytest.importorskip("diffusers", reason="the wan extra is not installed: pip install 'syn2seq[wan]'")
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline,
                           WanTransformer3DModel)
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, PreTrainedTokenizerFast,
                              UMT5Config, UMT5EncoderModel)

    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(WORDS), d_model=16, d_kv=4, d_ff=16, num_layers=1,
                                               num_heads=2, relative_attention_num_buckets=4,
                                               relative_attention_max_distance=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    # CLIP: 8x8 input in 4x4 patches -> 4 + 1 tokens per image; the FLF table holds both images' tokens.
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=8, projection_dim=8, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=8, intermediate_size=16,
                                                     patch_size=4))
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8,
                                        in_channels=36, out_channels=16, text_dim=16, freq_dim=32, ffn_dim=16,
                                        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                        rope_max_seq_len=32, image_dim=8, added_kv_proj_dim=16, pos_embed_seq_len=10)
    with torch.no_grad():  # random, not zero: the single-file test must see every tensor arrive
        for p in transformer.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                   image_processor=CLIPImageProcessor(crop_size=8, size=8),
                                   image_encoder=image_encoder, transformer=transformer)
    root = tmp_path_factory.mktemp("wan")
    folder = root / "Wan-tiny-FLF2V-diffusers"
    pipe.save_pretrained(folder, safe_serialization=True)
    state = {k: v.detach().clone().contiguous() for k, v in transformer.state_dict().items()}
    single = root / "wan_tiny_flf2v_fp32.safetensors"
    save_file({comfy_name(k): v for k, v in state.items()}, str(single))
    return folder, single, state


@pytest.fixture(scope="module")
def wan(tiny_wan):
    return get_interpolator("wan", model=tiny_wan[0], steps=STEPS, progress_bar=False)


def test_registered_and_output_shape_dtype_range(wan):
    assert "wan" in known_interpolators() and wan.times_per_call is None
    assert wan.device.type == "cpu" and wan.dtype == torch.float32 and not wan.cpu_offload
    a, b = pair()
    c, d = pair(seed=3)
    first, last = torch.stack([a, c]), torch.stack([b, d])
    out = interpolate(first, last, 3, wan)  # B = 2
    assert out.shape == (2, 3, 3, 24, 40) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out[0], out[1])
    single = interpolate(a.double(), b.double(), 2, wan)  # unbatched, in the dtype of first
    assert single.shape == (2, 3, 24, 40) and single.dtype == torch.float64


def test_frames_are_the_inner_wan_frames_endpoints_excluded(tiny_wan):
    interp = get_interpolator("wan", model=tiny_wan[0], steps=STEPS, color_match=False, progress_bar=False)
    a, b = pair()
    for n in (1, 3, 4):
        clip = interp.clip(a[None], b[None], wan_length(n))[0]  # [L, 3, H, W], endpoints included
        assert clip.shape == (wan_length(n), 3, 24, 40)
        out = interpolate(a, b, n, interp)
        torch.testing.assert_close(out, wan_to_transition(clip, n), atol=0, rtol=0)
    # other times go through the general mapping, never onto the endpoints
    times = torch.tensor([0.02, 0.98], dtype=torch.float64)
    clip = interp.clip(a[None], b[None], wan_length(2))[0]
    out = interp(a[None], b[None], times)[0]
    torch.testing.assert_close(out, clip[[1, len(clip) - 2]], atol=0, rtol=0)


def test_deterministic_for_a_seed(tiny_wan, wan):
    a, b = pair()
    x = interpolate(a, b, 3, wan)
    y = interpolate(a, b, 3, wan)
    assert torch.equal(x, y)
    other = get_interpolator("wan", model=tiny_wan[0], steps=STEPS, seed=1, progress_bar=False)
    assert not torch.equal(x, interpolate(a, b, 3, other))


def test_single_file_transformer_loads_the_same_weights(tiny_wan, wan, tmp_path):
    folder, single, state = tiny_wan
    # a folder whose transformer/ holds only its config, as when the weights come from ComfyUI's folder
    slim = tmp_path / "slim"
    shutil.copytree(folder, slim)
    for p in (slim / "transformer").iterdir():
        if p.name != "config.json":
            p.unlink()
    interp = get_interpolator("wan", model=slim, transformer_file=single, steps=STEPS, progress_bar=False)
    loaded = interp.pipe.transformer.state_dict()
    assert sorted(loaded) == sorted(state)  # the FLF image-position table included (img_emb.emb_pos)
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    a, b = pair()
    assert torch.equal(interpolate(a, b, 2, interp), interpolate(a, b, 2, wan))
    # a single file that misses tensors is refused, naming them
    from safetensors.torch import load_file, save_file

    partial = load_file(str(single))
    del partial["img_emb.proj.1.weight"]
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(Syn2SeqInputError, match="weights for every parameter.*lacking some of them"):
        get_interpolator("wan", model=slim, transformer_file=tmp_path / "partial.safetensors", progress_bar=False)
    with pytest.raises(Syn2SeqInputError, match="no file at"):
        get_interpolator("wan", model=slim, transformer_file=tmp_path / "none.safetensors")
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(Syn2SeqInputError, match="never unpickled"):
        get_interpolator("wan", model=slim, transformer_file=tmp_path / "w.pth")
    with pytest.raises(Syn2SeqInputError, match=r"lacking \['transformer/\*.safetensors'\]"):
        get_interpolator("wan", model=slim)  # without the file the folder lacks the weights


def test_color_match_reduces_drift_on_the_wan_clip(tiny_wan, wan):
    raw = get_interpolator("wan", model=tiny_wan[0], steps=STEPS, color_match=False, progress_bar=False)
    a, b = pair()
    n = 7
    times = transition_times(n)
    before_frames = interpolate(a, b, n, raw)
    after_frames = interpolate(a, b, n, wan)
    before = color_drift(before_frames, a, b, times)
    after = color_drift(after_frames, a, b, times)
    print(f"tiny Wan drift (Lab, mean abs channel-mean error): before {before.mean():.3f} "
          f"(max {before.max():.3f}), after {after.mean():.4f} (max {after.max():.4f})")
    assert float(before.mean()) > 1.0  # random weights: far off the endpoints' colours
    assert float(after.max()) < 0.1 * float(before.mean())
    torch.testing.assert_close(after_frames, match_color(before_frames, a, b, times))
    # an injected cast on Wan's own frames is removed as well
    cast = (before_frames + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)).clamp(0, 1)
    assert float(color_drift(match_color(cast, a, b, times), a, b, times).max()) < 0.1 * float(
        color_drift(cast, a, b, times).mean())


def test_cli_writes_frames(tiny_wan, tmp_path, capsys):
    a, b = pair(32, 48)
    write_image(tmp_path / "a.png", a)
    write_image(tmp_path / "b.png", b)
    out = tmp_path / "frames"
    args = ["interpolate", "--first", str(tmp_path / "a.png"), "--last", str(tmp_path / "b.png"), "-n", "3",
            "--backend", "wan", "--wan-model", str(tiny_wan[0]), "--wan-steps", str(STEPS), "--device", "cpu",
            "--out", str(out)]
    assert main(args + ["--quiet", "--prompt", "a camera move", "--wan-seed", "3", "--no-color-match"]) == 0
    pngs = sorted(out.iterdir())
    assert [p.name for p in pngs] == [f"frame_{k:04d}.png" for k in range(1, 4)]
    assert all(read_image(p).shape == (3, 32, 48) for p in pngs)
    assert main(args + ["--overwrite", "--wan-transformer", str(tiny_wan[1])]) == 0
    assert "Wan pipeline" in capsys.readouterr().err
    for bad, said in ((["--wan-dtype", "fp64"], "invalid choice: 'fp64'"),
                      (["--wan-steps", "0"], "expected an integer in [1, 1000], got 0")):
        with pytest.raises(SystemExit) as e:  # argparse refuses it before any work
            main(args + ["--overwrite", "--quiet", *bad])
        assert e.value.code == 2 and said in capsys.readouterr().err
    rc = main(["interpolate", "--first", str(tmp_path / "a.png"), "--last", str(tmp_path / "b.png"), "-n", "2",
               "--backend", "wan", "--out", str(tmp_path / "y"), "--quiet"])
    assert rc == 2 and "Wan model folder: expected a diffusers-format" in capsys.readouterr().err


def test_clear_errors(tiny_wan, tmp_path):
    folder = tiny_wan[0]
    with pytest.raises(Syn2SeqInputError, match="none given.*Nothing is downloaded"):
        get_interpolator("wan")
    with pytest.raises(Syn2SeqInputError, match="no folder at .*hf download"):
        get_interpolator("wan", model=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Syn2SeqInputError, match="without model_index.json"):
        get_interpolator("wan", model=tmp_path / "empty")
    no_vae = tmp_path / "no_vae"
    shutil.copytree(folder, no_vae)
    shutil.rmtree(no_vae / "vae")
    with pytest.raises(Syn2SeqInputError, match=r"lacking \['vae/'\]"):
        get_interpolator("wan", model=no_vae)
    no_weights = tmp_path / "no_weights"
    shutil.copytree(folder, no_weights)
    for p in (no_weights / "image_encoder").glob("*.safetensors"):
        p.unlink()
    with pytest.raises(Syn2SeqInputError, match=r"lacking \['image_encoder/\*.safetensors'\]"):
        get_interpolator("wan", model=no_weights)
    t2v = tmp_path / "t2v"
    shutil.copytree(folder, t2v)
    index = json.loads((t2v / "model_index.json").read_text())
    (t2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "WanPipeline"}))
    with pytest.raises(Syn2SeqInputError, match="holding a WanPipeline"):
        get_interpolator("wan", model=t2v)
    (t2v / "model_index.json").write_text(json.dumps({**index, "expand_timesteps": True}))
    with pytest.raises(Syn2SeqInputError, match="ignores last_image"):
        get_interpolator("wan", model=t2v)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "vae" / "config.json").write_text("{not json")
    with pytest.raises(Syn2SeqInputError, match="diffusers cannot load"):
        get_interpolator("wan", model=broken)
    with pytest.raises(Syn2SeqInputError, match=r"dtype: expected one of .*'fp64'"):
        get_interpolator("wan", model=folder, dtype="fp64")
    with pytest.raises(Syn2SeqInputError, match="cpu_offload"):
        get_interpolator("wan", model=folder, device="cpu", cpu_offload=True)
    with pytest.raises(Syn2SeqInputError, match=r"steps: expected an integer in \[1, 1000\]"):
        get_interpolator("wan", model=folder, steps=0)
    with pytest.raises(Syn2SeqInputError, match="options of the 'wan' interpolator"):
        get_interpolator("wan", model=folder, stepz=2)


def test_time_per_call(wan):
    """Not a limit, a measurement (printed with -s): one pair, 3 frames (a 5-frame clip), 2 steps."""
    a, b = pair()
    start = time.perf_counter()
    interpolate(a, b, 3, wan)
    print(f"tiny Wan, 24x40 -> 32x48, 5 frames, {STEPS} steps: {time.perf_counter() - start:.3f} s per call")
