"""``syn2seq bench sampler``: its options and the comparison with the reference DFoT network (issue 34).

The comparison imports DFoT's own ``UViT3DPose`` from a checkout the user gives. With ``SYN2SEQ_DFOT_REFERENCE``
set to such a checkout (e.g. the fork ktncktnc/diffusion-forcing-transformer at a3a0e70, in an environment with
omegaconf, timm + torchvision, rotary-embedding-torch and diffusers), the real comparison runs at a micro size and
our network must give the reference's outputs (the same weights, loaded by name); without it that test is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from syn2seq_core.benchmarks import _reference
from syn2seq_core.benchmarks.sampler import compare_reference, parse_sizes
from syn2seq_core.base.errors import Syn2SeqInputError

from .test_dfot_model import MICRO_UVIT

REFERENCE = os.environ.get("SYN2SEQ_DFOT_REFERENCE")


def test_a_folder_without_the_reference_code_is_refused_naming_what_is_expected(tmp_path):
    (tmp_path / "algorithms" / "dfot").mkdir(parents=True)
    with pytest.raises(Syn2SeqInputError, match="u_vit3d_pose.py") as e:
        _reference.load_backbones(tmp_path)
    assert str(tmp_path) in str(e.value)
    result = subprocess.run([sys.executable, "-m", "syn2seq_core", "bench", "sampler", "--configs", "none",
                             "--reference", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert "--reference: expected the root of a checkout of DFoT's code" in result.stderr
    assert "syn2seq bench sampler: one denoising step" not in result.stdout  # refused before measuring anything


def test_reference_sizes_are_parsed_and_checked():
    assert parse_sizes("32x4, 64X8") == [(32, 4), (64, 8)]
    for bad in ("32", "32x4x2", "ax4", "", "4x4", "32x0"):
        with pytest.raises(Syn2SeqInputError):
            parse_sizes(bad)


def test_numeric_options_take_their_ranges_from_the_limits_table():
    result = subprocess.run([sys.executable, "-m", "syn2seq_core", "bench", "sampler", "--reps", "0"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "expected an integer in [1, 100], got 0" in result.stderr


@pytest.mark.skipif(not REFERENCE, reason="set SYN2SEQ_DFOT_REFERENCE to a checkout of DFoT's code to compare with it")
def test_our_uvit_gives_the_reference_networks_outputs_on_the_same_weights():
    logs = []
    rows = compare_reference(REFERENCE, [(16, 2), (16, 3)], batch=2, device=torch.device("cpu"), reps=1,
                             dtypes=("fp32",), log=logs.append, config=MICRO_UVIT.replace(noise_features=256))
    assert len(rows) == 2 and len(logs) == 2
    for row in rows:
        assert row["max_abs"] > 0.1  # random weights everywhere: the outputs carry signal
        assert row["max_diff"] < 1e-5 * max(1.0, row["max_abs"]), row
        assert row["max_diff_rays"] < 1e-5 * max(1.0, row["max_abs"]), row
        assert row["max_diff_no_cache"] < 1e-5 * max(1.0, row["max_abs"]), row
        assert row["reference_s"] > 0 and row["ours_s"] > 0 and row["ratio"] > 0


def test_a_compile_that_fails_is_reported_and_sampling_stays_eager(monkeypatch):
    from syn2seq_core.benchmarks import sampler

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    model = torch.nn.Linear(2, 2)
    result = sampler.compiled_steps(model, None, None, None, torch.device("cpu"), reps=1)
    assert result == {"error": "RuntimeError: no C++ compiler found"}
