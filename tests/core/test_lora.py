"""LoRA finetune: only the adapters change, the run's lora.safetensors put on the base gives the run's model,
and adapters refuse a base they were not trained on."""

import sys

import pytest
import torch

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.dfot.lora import LORA_NAME
from syn2seq_core.training.checkpoints import MODEL_NAME, load_checkpoint
from syn2seq_core.training.config import load_config
from syn2seq_core.training.loop import train

from .test_train import TINY, UVIT_MODEL, with_model_table

pytestmark = pytest.mark.usefixtures("one_thread")

pytest.importorskip("peft")


def _config(tmp_path, name, arch, steps, extra="", init_from=None):
    text = TINY.format(stage="finetune", steps=steps, every=steps)
    if arch == "uvit3d_pose":
        text = with_model_table(text, UVIT_MODEL)
    if init_from:
        text = text.replace('name = "tiny"', f'name = "tiny"\ninit_from = "{init_from}"')
    path = tmp_path / f"{name}.toml"
    path.write_text(text + extra)
    return load_config(path)


def _outputs(network, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = network.config
    x = torch.randn(1, 4, 3, c.height, c.width, generator=g)
    rays = torch.randn(1, 4, c.height, c.width, c.ray_channels, generator=g)
    with torch.no_grad():
        return network.eval()(x, torch.randn(1, 4, generator=g), rays)


@pytest.mark.parametrize("arch", ["dit3d", "uvit3d_pose"])
def test_lora_trains_only_adapters_and_reloads_onto_the_base(tmp_path, arch):
    from syn2seq_core.generation.pipeline import load_model

    train(_config(tmp_path, "base", arch, 3), tmp_path / "base", progress=False)
    base_file = tmp_path / "base" / MODEL_NAME
    cfg = _config(tmp_path, "lora", arch, 4, "[lora]\nrank = 4\nalpha = 8\n", base_file.as_posix())
    train(cfg, tmp_path / "lora", progress=False)

    base = load_model(base_file).network.state_dict()
    trained = load_checkpoint(tmp_path / "lora")["model"]
    adapters = {k: v for k, v in trained.items() if "lora_" in k}
    assert adapters and any(float(v.abs().sum()) > 0 for k, v in adapters.items() if "lora_B" in k)
    for key, value in trained.items():  # every weight that is not an adapter is the base's, unchanged
        if "lora_" not in key:
            assert torch.equal(value, base[key.replace(".base_layer.", ".")]), key
    lora_file = tmp_path / "lora" / LORA_NAME
    assert lora_file.stat().st_size < 0.5 * base_file.stat().st_size

    merged = load_model(tmp_path / "lora" / MODEL_NAME).network  # the run's model: base + adapters merged
    applied = load_model(base_file, lora=lora_file).network  # what --lora does
    plain = load_model(base_file).network
    torch.testing.assert_close(_outputs(applied), _outputs(merged), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(_outputs(applied), _outputs(plain), atol=1e-6)
    # ... and equal the peft model the run trained (EMA weights, adapters unmerged)
    from syn2seq_core.dfot.checkpoint import build_model
    from syn2seq_core.dfot.lora import add_lora

    peft_model = add_lora(build_model(merged.config), cfg.lora)
    peft_model.load_state_dict(load_checkpoint(tmp_path / "lora")["ema"])
    torch.testing.assert_close(_outputs(applied), _outputs(peft_model), atol=1e-5, rtol=1e-5)


def test_lora_refuses_a_base_it_was_not_trained_on(tmp_path):
    from syn2seq_core.generation.pipeline import load_model

    train(_config(tmp_path, "base", "dit3d", 1), tmp_path / "base", progress=False)
    train(_config(tmp_path, "lora", "dit3d", 1, "[lora]\nrank = 2\n", (tmp_path / "base" / MODEL_NAME).as_posix()),
          tmp_path / "lora", progress=False)
    train(_config(tmp_path, "other", "uvit3d_pose", 1), tmp_path / "other", progress=False)
    with pytest.raises(Syn2SeqInputError, match="lora: expected adapters trained on this network"):
        load_model(tmp_path / "other" / MODEL_NAME, lora=tmp_path / "lora" / LORA_NAME)
    with pytest.raises(Syn2SeqInputError, match="lora: expected a LoRA file written by syn2seq training"):
        load_model(tmp_path / "base" / MODEL_NAME, lora=tmp_path / "base" / MODEL_NAME)


def test_lora_config_errors(tmp_path, monkeypatch):
    with pytest.raises(Syn2SeqInputError, match="init_from: expected the base weights"):
        _config(tmp_path, "x", "dit3d", 1, "[lora]\nrank = 4\n")
    with pytest.raises(Syn2SeqInputError, match=r"\[lora\] rank: expected an integer in \[0, 4096\]"):
        _config(tmp_path, "x", "dit3d", 1, "[lora]\nrank = -1\n", "m.safetensors")
    with pytest.raises(Syn2SeqInputError, match=r"\[lora\].*got \['ranks'\]"):
        _config(tmp_path, "x", "dit3d", 1, "[lora]\nranks = 4\n", "m.safetensors")
    train(_config(tmp_path, "base", "dit3d", 1), tmp_path / "base", progress=False)
    cfg = _config(tmp_path, "lora", "dit3d", 1, '[lora]\nrank = 2\ntargets = "nothing_here"\n',
                  (tmp_path / "base" / MODEL_NAME).as_posix())
    with pytest.raises(Syn2SeqInputError, match=r"\[lora\] targets: expected a pattern matching"):
        train(cfg, tmp_path / "t", progress=False)
    monkeypatch.setitem(sys.modules, "peft", None)  # not installed
    cfg = _config(tmp_path, "lora2", "dit3d", 1, "[lora]\nrank = 2\n", (tmp_path / "base" / MODEL_NAME).as_posix())
    with pytest.raises(Syn2SeqInputError, match=r"pip install 'syn2seq\[train\]'"):
        train(cfg, tmp_path / "p", progress=False)


def test_cli_lora_option_generates_with_the_adapters(tmp_path, capsys):
    """`--lora` of the generation commands: the merged model's outputs, not the base's. (The base trains a few
    steps first: the DiT3D's zero-initialised output gates pass no gradient to adapters behind them.)"""
    import json

    from syn2seq_core.cli import main as cli

    cfg = TINY.replace("height = 16\nwidth = 16", "height = 32\nwidth = 32").replace("size = 16", "size = 32")
    base_cfg = tmp_path / "base.toml"
    base_cfg.write_text(cfg.format(stage="finetune", steps=4, every=4).replace("max_frames = 8", "max_frames = 16"))
    train(load_config(base_cfg), tmp_path / "base", progress=False)
    base = (tmp_path / "base" / MODEL_NAME).as_posix()
    lora_cfg = tmp_path / "lora.toml"
    lora_cfg.write_text(base_cfg.read_text().replace('name = "tiny"', f'name = "tiny"\ninit_from = "{base}"')
                        .replace("max_steps = 4", "max_steps = 4").replace("lr = 2e-3", "lr = 5e-2")
                        + "[lora]\nrank = 4\n")
    train(load_config(lora_cfg), tmp_path / "lora", progress=False)
    runs = {}
    for name, extra in (("base", []), ("lora", ["--lora", str(tmp_path / "lora" / LORA_NAME)]),
                        ("merged", None)):
        model = str(tmp_path / "lora" / MODEL_NAME) if extra is None else base
        assert cli(["demo", "--out", str(tmp_path / f"out_{name}"), "--model", model, "--steps", "2", *(extra or [])]) == 0
        runs[name] = json.loads((tmp_path / f"out_{name}" / "metrics.json").read_text())["metrics"]["psnr"]["mean"]
    assert runs["lora"] == pytest.approx(runs["merged"], abs=2e-5)
    assert abs(runs["lora"] - runs["base"]) > 1e-4


def test_lora_finetune_of_the_uvit_under_fsdp_equals_one_process(tmp_path):
    """FSDP2 over 2 gloo processes on the U-ViT (nested block lists, up/down samplers) with LoRA (frozen base
    weights and trainable adapters in one shard unit): the weights and losses of one process at the same
    global batch, and the run writes its adapters beside the merged model as a one-process run does."""
    from .test_train import read_log, torchrun

    train(_config(tmp_path, "base", "uvit3d_pose", 1), tmp_path / "base", progress=False)
    cfg = _config(tmp_path, "lora", "uvit3d_pose", 2, "[lora]\nrank = 4\nalpha = 8\n",
                  (tmp_path / "base" / MODEL_NAME).as_posix())
    train(cfg, tmp_path / "one", progress=False)
    fsdp = tmp_path / "fsdp.toml"
    fsdp.write_text((tmp_path / "lora.toml").read_text().replace("bf16 = false", 'bf16 = false\nparallel = "fsdp"'))
    torchrun(fsdp, tmp_path / "two")
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, atol=2e-6, rtol=1e-4, msg=key)
    assert [r["loss"] for r in read_log(tmp_path / "two")] == pytest.approx(
        [r["loss"] for r in read_log(tmp_path / "one")], rel=1e-4)
    assert (tmp_path / "two" / LORA_NAME).is_file()


def _converted_dfot(tmp_path, name="dfot", **extra):
    from syn2seq_core.cli import main as cli

    from .test_convert_dfot import make_dfot_ckpt

    make_dfot_ckpt(tmp_path / f"{name}.ckpt", extra=extra or None)
    out = tmp_path / f"{name}.safetensors"
    assert cli(["convert-dfot", str(tmp_path / f"{name}.ckpt"), str(out), "--size", "16"]) == 0
    return out


def test_a_lora_of_a_converted_dfot_samples_as_its_run_and_refuses_a_base_that_does_not_fit(tmp_path):
    """A LoRA trained from a converted DFoT base with the pack's sequence settings (its cameras, 2 transition
    frames, noise shift 0.5) is sampled as the same run's merged model.safetensors, not with the base's record
    (RE10K cameras, DFoT's time grid and 50 steps, 4 transition frames, shift 0.125): lora.safetensors carries its
    run's training record and the base's, and loading applies the first after checking the second. A base of
    another network, or of the same network with another record, is refused naming both files.
    (The reference DFoT has no LoRA; the converted base's sampling record is the reference's own,
    configurations/algorithm/dfot_video.yaml:45,58 of fork ktncktnc/diffusion-forcing-transformer @ a3a0e70:
    1,000 training levels, 50 DDIM steps.)"""
    from syn2seq_core.generation.pipeline import BUNDLED_MODEL, load_model

    base = _converted_dfot(tmp_path)
    text = with_model_table(TINY.format(stage="finetune", steps=2, every=2))  # the network is the base file's
    text = text.replace('name = "tiny"', f'name = "tiny"\ninit_from = "{base.as_posix()}"')
    text = text.replace("noise_shift = 1.0", "noise_shift = 0.5") + "[lora]\nrank = 4\nalpha = 8\n"
    path = tmp_path / "lora.toml"
    path.write_text(text)
    train(load_config(path), tmp_path / "run", progress=False)
    lora_file = tmp_path / "run" / LORA_NAME

    merged = load_model(tmp_path / "run" / MODEL_NAME)
    applied = load_model(base, lora=lora_file)
    plain = load_model(base)
    assert (plain.camera_convention, plain.schedule.grid, plain.default_steps, plain.transition_frames,
            plain.schedule.shift) == ("re10k", "dfot_ddim", 50, 4, 0.125)
    assert (merged.camera_convention, merged.schedule.grid, merged.default_steps, merged.transition_frames,
            merged.schedule.shift) == ("pack", "uniform", 25, 2, 0.5)
    for attr in ("camera_convention", "default_steps", "default_eta", "transition_frames", "data", "info"):
        assert getattr(applied, attr) == getattr(merged, attr), attr
    assert (applied.schedule.grid, applied.schedule.shift, applied.schedule.timesteps) == (
        merged.schedule.grid, merged.schedule.shift, merged.schedule.timesteps)
    torch.testing.assert_close(_outputs(applied.network), _outputs(merged.network), atol=1e-5, rtol=1e-5)

    # the same network with another record: the run's own merged file, another DFoT checkpoint (other step)
    other = _converted_dfot(tmp_path, "other", global_step=99)
    for wrong in (tmp_path / "run" / MODEL_NAME, other):
        with pytest.raises(Syn2SeqInputError) as e:
            load_model(wrong, lora=lora_file)
        text = str(e.value)
        assert str(lora_file) in text and str(wrong) in text and base.as_posix() in text and "record" in text
    # another network
    with pytest.raises(Syn2SeqInputError) as e:
        load_model(BUNDLED_MODEL, lora=lora_file)
    assert str(lora_file) in str(e.value) and str(BUNDLED_MODEL) in str(e.value)
