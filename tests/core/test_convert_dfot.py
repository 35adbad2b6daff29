"""convert-dfot: Lightning checkpoints in DFoT's layout, EMA selection, refusal of pickled code; download."""

import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from syn2seq_core.cli import main as cli
from syn2seq_core.dfot.checkpoint import load_model, read_metadata
from syn2seq_core.dfot.convert import convert_dfot_checkpoint, dfot_key_to_uvit, infer_uvit3d_config
from syn2seq_core.dfot.uvit3d import UViT3DPose, UViT3DPoseConfig
from syn2seq_core.base.errors import Syn2SeqInputError

REPO = Path(__file__).resolve().parents[2]

# A small network in the RE10K checkpoint's shape: 2 ResBlock levels, 2 transformer levels, 180 ray channels.
SMALL = dict(channels=(32, 32, 48, 48), emb=32, patch=2, rays=180, in_ch=3, updown=(1, 2, 1), mid=2, heads=2,
             noise=16)


def reference_backbone_entries(channels, emb, patch, rays, in_ch, updown, mid, heads, noise):
    """(name, shape) of DFoT's U-ViT3D-Pose state dict, in its order, written from the reference code
    (algorithms/dfot/backbones/{base_backbone.py, u_vit/u_vit3d.py, u_vit/u_vit3d_pose.py, u_vit/u_vit_blocks.py,
    modules/embeddings.py}) independently of syn2seq's UViT3DPose. Levels 0-1 ResBlock, 2-3 TransformerBlock.
    Second value: True for the buffers (not parameters)."""
    out = []

    def add(name, *shape, buffer=False):
        out.append((name, shape, buffer))

    # BaseBackbone.__init__: StochasticTimeEmbedding(FourierEmbedding buffers, diffusers TimestepEmbedding)
    add("noise_level_pos_embedding.timesteps.freqs", noise, buffer=True)
    add("noise_level_pos_embedding.timesteps.phases", noise, buffer=True)
    add("noise_level_pos_embedding.embedding.linear_1.weight", emb, noise)
    add("noise_level_pos_embedding.embedding.linear_1.bias", emb)
    add("noise_level_pos_embedding.embedding.linear_2.weight", emb, emb)
    add("noise_level_pos_embedding.embedding.linear_2.bias", emb)
    # RandomDropoutPatchEmbed -> timm PatchEmbed(proj)
    add("external_cond_embedding.patch_embedder.proj.weight", emb, rays, patch, patch)
    add("external_cond_embedding.patch_embedder.proj.bias", emb)
    add("embed_input.proj.weight", channels[0], in_ch, patch, patch)
    add("embed_input.proj.bias", channels[0])
    add("project_output.proj.weight", channels[0], in_ch, patch, patch)  # ConvTranspose2d: [in, out, k, k]
    add("project_output.proj.bias", in_ch)

    def res(p, ch):
        add(f"{p}.emb_layer.weight", 2 * ch, emb, 1, 1)
        add(f"{p}.emb_layer.bias", 2 * ch)
        add(f"{p}.in_layers.0.weight", ch)
        add(f"{p}.in_layers.0.bias", ch)
        add(f"{p}.in_layers.2.weight", ch, ch, 3, 3)
        add(f"{p}.in_layers.2.bias", ch)
        add(f"{p}.out_norm.weight", ch)
        add(f"{p}.out_norm.bias", ch)
        add(f"{p}.out_rest.1.weight", ch, ch, 3, 3)
        add(f"{p}.out_rest.1.bias", ch)

    def tr(p, ch):
        add(f"{p}.norm.emb_layer.weight", 2 * ch, emb)
        add(f"{p}.norm.emb_layer.bias", 2 * ch)
        add(f"{p}.norm.norm.weight", ch)
        add(f"{p}.fused_attn_mlp_proj.weight", 7 * ch, ch)
        add(f"{p}.fused_attn_mlp_proj.bias", 7 * ch)
        add(f"{p}.q_norm.weight", ch // heads)
        add(f"{p}.k_norm.weight", ch // heads)
        add(f"{p}.attn_out.weight", ch, ch)
        add(f"{p}.attn_out.bias", ch)
        add(f"{p}.mlp_out.2.weight", ch, 4 * ch)
        add(f"{p}.mlp_out.2.bias", ch)

    block = {0: res, 1: res, 2: tr, 3: tr}
    for level, n in enumerate(updown):
        for i in range(n):
            block[level](f"down_blocks.{level}.{i}", channels[level])
        add(f"down_blocks.{level}.{n}.conv.weight", channels[level + 1], channels[level], 3, 3)
        add(f"down_blocks.{level}.{n}.conv.bias", channels[level + 1])
    for i in range(mid):
        block[3](f"mid_blocks.{i}", channels[3])
    for j, level in enumerate(reversed(range(len(updown)))):
        add(f"up_blocks.{j}.0.conv.weight", channels[level], channels[level + 1], 3, 3)
        add(f"up_blocks.{j}.0.conv.bias", channels[level])
        for i in range(updown[level]):
            block[level](f"up_blocks.{j}.{i + 1}", channels[level])
    return out


def make_dfot_ckpt(path, *, seed=0, full=False, compiled=False, extra=None):
    """A Lightning checkpoint in DFoT's layout. Returns (training weights, EMA weights) by backbone name."""
    g = torch.Generator().manual_seed(seed)
    entries = reference_backbone_entries(**SMALL)
    train = OrderedDict((n, torch.randn(s, generator=g) * 0.05) for n, s, _ in entries)
    ema = OrderedDict((n, v if buf else torch.randn(v.shape, generator=g) * 0.05)
                      for (n, _, buf), v in zip(entries, train.values()))
    prefix = "diffusion_model._orig_mod.model." if compiled else "diffusion_model.model."
    state_dict = OrderedDict((prefix + n, (train if full else ema)[n]) for n in train)
    state_dict["metrics_prediction.fvd.placeholder"] = torch.zeros(1)  # a non-backbone key to ignore
    ckpt = {"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "2.3.0", "state_dict": state_dict,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 3, "completed": 3}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None, "dirpath": "/ckpt",
                                                                "kth_value": torch.tensor(float("inf"))}},
            "lr_schedulers": [{"base_lrs": [5e-5], "last_epoch": 1234, "lr_lambdas": [{}]}]}
    if full:  # EMAOptimizer.state_dict(): {"opt", "ema" (parameters only, in named_parameters order), ...}
        params = [ema[n] for n, _, buf in entries if not buf]
        adam = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
                "param_groups": [{"lr": 5e-5, "betas": (0.9, 0.99), "weight_decay": 0.01, "params": [0]}]}
        ckpt["optimizer_states"] = [{"opt": adam, "ema": tuple(params), "current_step": 1234, "decay": 0.9999,
                                     "every_n_steps": 1}]
    else:  # a released EMA-only checkpoint
        ckpt["optimizer_states"] = []
        ckpt["pretrained_ema"] = True
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return train, ema


def _forward_inputs(cfg):
    g = torch.Generator().manual_seed(5)
    return (torch.randn(1, 2, 3, cfg.height, cfg.width, generator=g), torch.randn(1, 2, generator=g),
            torch.randn(1, 2, cfg.height, cfg.width, 180, generator=g))


@pytest.mark.parametrize("full,compiled", [(False, False), (True, False), (True, True)],
                         ids=["ema-release", "full-training", "full-compiled"])
def test_converter_round_trip_takes_the_ema_weights(tmp_path, full, compiled):
    train, ema = make_dfot_ckpt(tmp_path / "dfot.ckpt", full=full, compiled=compiled)
    summary = convert_dfot_checkpoint(tmp_path / "dfot.ckpt", tmp_path / "out.safetensors", height=16, width=16,
                                      max_frames=4)
    assert "EMA" in summary["weights"] and summary["global_step"] == 1234
    model = load_model(tmp_path / "out.safetensors")
    cfg = model.config
    assert (cfg.channels, cfg.emb_channels, cfg.num_heads, cfg.num_updown_blocks, cfg.num_mid_blocks) == (
        (32, 32, 48, 48), 32, 2, (1, 2, 1), 2)
    assert cfg.block_types == ("ResBlock", "ResBlock", "TransformerBlock", "TransformerBlock")
    state = model.state_dict()
    assert set(state) == set(ema)
    for name, value in ema.items():  # every reference tensor landed under its own name
        assert torch.equal(state[name], value), name
    # Identical outputs to a network given the reference weights directly.
    direct = UViT3DPose(cfg)
    direct.load_state_dict(ema)
    x, logsnr, rays = _forward_inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(x, logsnr, rays), direct.eval()(x, logsnr, rays))
    assert "ema" in read_metadata(tmp_path / "out.safetensors")["source"].lower()


def test_no_ema_option_takes_the_training_weights(tmp_path):
    train, ema = make_dfot_ckpt(tmp_path / "dfot.ckpt", full=True)
    summary = convert_dfot_checkpoint(tmp_path / "dfot.ckpt", tmp_path / "out.safetensors", height=16, width=16,
                                      use_ema=False)
    state = load_model(tmp_path / "out.safetensors").state_dict()
    assert "training weights" in summary["weights"]
    assert torch.equal(state["embed_input.proj.weight"], train["embed_input.proj.weight"])
    assert not torch.equal(state["embed_input.proj.weight"], ema["embed_input.proj.weight"])


def test_ema_list_of_the_wrong_length_is_refused(tmp_path):
    path = tmp_path / "dfot.ckpt"
    make_dfot_ckpt(path, full=True)
    ckpt = torch.load(path, weights_only=True)
    ckpt["optimizer_states"][0]["ema"] = ckpt["optimizer_states"][0]["ema"][:-1]
    torch.save(ckpt, path)
    with pytest.raises(Syn2SeqInputError, match="one per parameter"):
        convert_dfot_checkpoint(path, tmp_path / "out.safetensors", height=16, width=16)


def test_key_mapping_and_config_inference():
    assert dfot_key_to_uvit("diffusion_model.model.mid_blocks.0.q_norm.weight") == "mid_blocks.0.q_norm.weight"
    assert dfot_key_to_uvit("diffusion_model._orig_mod.model.embed_input.proj.bias") == "embed_input.proj.bias"
    assert dfot_key_to_uvit("data_mean") is None
    # The full RE10K layout infers the published configuration.
    re10k = dict(channels=(128, 256, 576, 1152), emb=1024, patch=2, rays=180, in_ch=3, updown=(3, 3, 6), mid=20,
                 heads=9, noise=256)
    entries = reference_backbone_entries(**re10k)
    shapes = {n: torch.empty(s, device="meta") for n, s, _ in entries}
    assert infer_uvit3d_config(shapes) == UViT3DPoseConfig()
    expected = UViT3DPose(UViT3DPoseConfig(), device="meta").state_dict()
    # Same names, shapes and order as the reference state dict.
    assert [(k, tuple(v.shape)) for k, v in expected.items()] == [(n, s) for n, s, _ in entries]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("style", ["torch.save", "pickle.dump"])
def test_a_checkpoint_with_code_in_it_is_refused_without_running_it(tmp_path, style):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    payload = {"state_dict": {"diffusion_model.model.x": torch.zeros(1)}, "hook": _RunsCode(marker)}
    if style == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(Syn2SeqInputError, match="system") as err:
        convert_dfot_checkpoint(path, tmp_path / "out.safetensors")
    assert "Refused without running it" in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_damaged_or_foreign_checkpoints_get_clear_errors(tmp_path):
    path = tmp_path / "dfot.ckpt"
    make_dfot_ckpt(path)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(Syn2SeqInputError, match="cut.ckpt"):
        convert_dfot_checkpoint(cut, tmp_path / "out.safetensors")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.layer.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(Syn2SeqInputError, match="diffusion_model.model"):
        convert_dfot_checkpoint(other, tmp_path / "out.safetensors")


def test_convert_dfot_command(tmp_path, capsys):
    make_dfot_ckpt(tmp_path / "dfot.ckpt")
    out = tmp_path / "m.safetensors"
    assert cli(["convert-dfot", str(tmp_path / "dfot.ckpt"), str(out), "--size", "16", "--dtype", "bfloat16"]) == 0
    assert "U-ViT3D-Pose" in capsys.readouterr().out
    model = load_model(out)
    assert model.embed_input.proj.weight.dtype == torch.bfloat16
    assert model.noise_level_pos_embedding.timesteps.freqs.dtype == torch.float32
    assert cli(["convert-dfot", str(tmp_path / "dfot.ckpt"), str(out), "--size", "16"]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err


# --- download ------------------------------------------------------------------------------------------------
def _download(tmp_path, env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "syn2seq_core", "download", "dfot-re10k", "--dest",
                           str(tmp_path / "models"), "--timeout", "3"],
                          env=full_env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["offline", "unreachable"])
def test_download_offline_fails_fast_naming_the_file_and_where_to_put_it(tmp_path, env):
    result = _download(tmp_path, env)
    assert result.returncode == 1
    err = result.stderr
    assert "https://huggingface.co/kiwhansong/DFoT/resolve/main/pretrained_models/DFoT_RE10K.ckpt" in err
    assert str(tmp_path / "models" / "DFoT_RE10K.ckpt") in err
    assert "syn2seq convert-dfot" in err
    assert not (tmp_path / "models" / "dfot_re10k.safetensors").exists()


def test_download_converts_a_checkpoint_put_there_by_hand(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "models"
    dest.mkdir()
    make_dfot_ckpt(dest / "DFoT_RE10K.ckpt")
    assert cli(["download", "dfot-re10k", "--dest", str(dest)]) == 0
    model = load_model(dest / "dfot_re10k.safetensors")
    assert model.config.height == 256 and model.config.max_frames == 8
    assert cli(["download", "dfot-re10k", "--dest", str(dest)]) == 0
    assert "already exists" in capsys.readouterr().out


def test_download_destination_is_comfyui_models_folder_inside_comfyui(tmp_path, monkeypatch):
    from syn2seq_core.commands.download import comfyui_root, default_destination

    root = tmp_path / "ComfyUI"
    (root / "custom_nodes" / "syn2seq").mkdir(parents=True)
    (root / "models").mkdir()
    assert comfyui_root(root / "custom_nodes" / "syn2seq") == root
    monkeypatch.chdir(root / "custom_nodes" / "syn2seq")
    assert default_destination() == root / "models" / "syn2seq"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if comfyui_root(REPO) is None:  # this checkout is not inside a ComfyUI install
        assert default_destination() == tmp_path / "data" / "syn2seq" / "models"
