"""Model files: save -> load round trips, and clear errors for damaged or mismatched files."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from syn2seq_core.dfot.checkpoint import (KEY_ARCH, KEY_CONFIG, KEY_FORMAT, load_model, read_config, read_metadata,
                                          save_model)
from syn2seq_core.dfot.model import DiT3D, DiT3DConfig
from syn2seq_core.dfot.uvit3d import UViT3DPose, UViT3DPoseConfig
from syn2seq_core.base.errors import Syn2SeqInputError

CFG = DiT3DConfig(height=16, width=16, patch_size=4, dim=48, depth=2, heads=2, max_frames=4, noise_features=32)
UVIT = UViT3DPoseConfig(height=16, width=16, channels=(32, 32, 48, 48), emb_channels=32, num_heads=2,
                        num_updown_blocks=(1, 1, 1), num_mid_blocks=1, noise_features=16, max_frames=3)


def _random(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _inputs(cfg, T=3):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2, T, 3, cfg.height, cfg.width, generator=g), torch.randn(2, T, generator=g),
            torch.randn(2, T, cfg.height, cfg.width, cfg.ray_channels, generator=g))


@pytest.mark.parametrize("config", [CFG, CFG.replace(attention="full", pos_emb="learned"), UVIT],
                         ids=["dit3d", "dit3d-full-learned", "uvit3d"])
def test_save_then_load_gives_identical_outputs(tmp_path, config):
    cls = DiT3D if isinstance(config, DiT3DConfig) else UViT3DPose
    model = _random(cls(config))
    path = save_model(tmp_path / "m.safetensors", model, extra_metadata={"training": {"step": 7}, "note": "hi"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind
    loaded = load_model(path)
    assert type(loaded) is cls and loaded.config == config and not loaded.training
    x, logsnr, rays = _inputs(config)
    with torch.no_grad():
        assert torch.equal(model(x, logsnr, rays), loaded(x, logsnr, rays))
    meta = read_metadata(path)
    assert meta[KEY_ARCH] == config.arch and json.loads(meta["training"]) == {"step": 7} and meta["note"] == "hi"
    assert read_config(path) == config


def test_load_in_bf16_casts_parameters_but_keeps_the_fourier_features_float32(tmp_path):
    path = save_model(tmp_path / "m.safetensors", _random(DiT3D(CFG)))
    model = load_model(path, dtype=torch.bfloat16)
    assert model.patch_embed.weight.dtype == torch.bfloat16
    assert model.noise_embedding.timesteps.freqs.dtype == torch.float32
    with torch.no_grad():
        v = model(*_inputs(CFG))
    assert v.dtype == torch.float32 and torch.isfinite(v).all()


def test_truncated_file_is_named_as_truncated(tmp_path):
    path = save_model(tmp_path / "m.safetensors", DiT3D(CFG))
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Syn2SeqInputError, match="truncated") as err:
        load_model(cut)
    assert str(cut) in str(err.value)


def test_files_that_are_not_safetensors_get_a_clear_message(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 3)
    with pytest.raises(Syn2SeqInputError, match="not safetensors"):
        load_model(junk)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, ckpt)
    with pytest.raises(Syn2SeqInputError, match="convert-dfot"):
        load_model(ckpt)
    with pytest.raises(Syn2SeqInputError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(Syn2SeqInputError, match="syn2seq.arch"):
        load_model(plain)


def test_wrong_tensors_are_listed_with_counts(tmp_path):
    path = save_model(tmp_path / "m.safetensors", DiT3D(CFG))
    tensors = load_file(str(path))
    meta = read_metadata(path)
    tensors["patch_embed.weight"] = torch.zeros(5, 5)
    for key in [k for k in tensors if k.startswith("blocks.1.")]:
        del tensors[key]
    tensors["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(Syn2SeqInputError) as err:
        load_model(bad)
    msg = str(err.value)
    n_missing = sum(1 for k in DiT3D(CFG).state_dict() if k.startswith("blocks.1."))
    assert f"missing {n_missing} [blocks.1." in msg and "more)" in msg
    assert "unexpected 1 [extra.weight]" in msg
    assert "patch_embed.weight (5, 5) vs (48, 48)" in msg


def test_wrong_config_metadata_is_refused(tmp_path):
    path = save_model(tmp_path / "m.safetensors", DiT3D(CFG))
    tensors, meta = load_file(str(path)), read_metadata(path)
    # A config that does not fit the weights (deeper network) names the missing blocks.
    deeper = dict(json.loads(meta[KEY_CONFIG]), depth=3)
    save_file(tensors, str(tmp_path / "deeper.safetensors"), metadata={**meta, KEY_CONFIG: json.dumps(deeper)})
    with pytest.raises(Syn2SeqInputError, match=r"missing \d+ \[blocks\.2\."):
        load_model(tmp_path / "deeper.safetensors")
    unknown = dict(json.loads(meta[KEY_CONFIG]), wings=2)
    save_file(tensors, str(tmp_path / "u.safetensors"), metadata={**meta, KEY_CONFIG: json.dumps(unknown)})
    with pytest.raises(Syn2SeqInputError, match="wings"):
        load_model(tmp_path / "u.safetensors")
    save_file(tensors, str(tmp_path / "a.safetensors"), metadata={**meta, KEY_ARCH: "unet9000"})
    with pytest.raises(Syn2SeqInputError, match="dit3d"):
        load_model(tmp_path / "a.safetensors")
    save_file(tensors, str(tmp_path / "v.safetensors"), metadata={**meta, KEY_FORMAT: "99"})
    with pytest.raises(Syn2SeqInputError, match="format version"):
        load_model(tmp_path / "v.safetensors")
    bad_value = dict(json.loads(meta[KEY_CONFIG]), attention="diagonal")
    save_file(tensors, str(tmp_path / "b.safetensors"), metadata={**meta, KEY_CONFIG: json.dumps(bad_value)})
    with pytest.raises(Syn2SeqInputError, match="attention"):
        load_model(tmp_path / "b.safetensors")


def test_save_refuses_a_foreign_module(tmp_path):
    with pytest.raises(Syn2SeqInputError, match="model"):
        save_model(tmp_path / "m.safetensors", torch.nn.Linear(2, 2))
