"""The working-memory estimate a host (ComfyUI's model management) makes room for, against the tensors that are
really alive at the peak of a forward, counted op by op; and the sampler options the nodes pass through."""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from syn2seq_core.dfot.model import DiT3D, dit3d_preset
from syn2seq_core.dfot.uvit3d import UViT3DPose, uvit3d_preset
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.cameras import Cameras
from syn2seq_core.generation.pipeline import Syn2SeqModel
from syn2seq_core.generation.sequence import build_sequence


class LiveTensors(TorchDispatchMode):
    """Bytes of the storages that tensors created inside the mode keep alive, and their peak."""

    def __init__(self, existing=()):
        super().__init__()
        self.live = self.peak = 0
        self.refs: dict[int, int] = {}
        self.existing = {t.untyped_storage()._cdata for t in existing}  # views of these allocate nothing

    def _release(self, key: int, nbytes: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage._cdata, storage.nbytes()
                if nbytes == 0 or key in self.existing:
                    continue
                if key not in self.refs:
                    self.refs[key] = 0
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                self.refs[key] += 1
                weakref.finalize(t, self._release, key, nbytes)
        return out


def measured_peak(net, frames: int, batch: int) -> int:
    c = net.config
    x = torch.randn(batch, frames, c.in_channels, c.height, c.width)
    logsnr = torch.randn(batch, frames)
    rays = torch.randn(batch, frames, c.height, c.width, c.ray_channels)
    with torch.no_grad(), LiveTensors([*net.parameters(), *net.buffers(), x, logsnr, rays]) as live:
        net(x, logsnr, rays)
    return live.peak


NETWORKS = {
    "dit3d_factorized": lambda: DiT3D(dit3d_preset("tiny")),
    "dit3d_full_64x48_p8": lambda: DiT3D(dit3d_preset("tiny", attention="full", height=64, width=48, patch_size=8)),
    "uvit3d": lambda: UViT3DPose(uvit3d_preset("base", height=64, width=64, channels=(32, 64, 96, 192), num_heads=4,
                                               num_mid_blocks=2, emb_channels=64)),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_activation_estimate_covers_the_live_tensors_without_wasting_much(name):
    net = NETWORKS[name]().eval()
    for frames, batch in ((4, 1), (8, 2)):
        measured = measured_peak(net, frames, batch)
        estimate = net.activation_bytes(frames, batch)
        # Within ~15% below (the 20% margin of memory_required covers it) and never more than 1.5x above.
        assert 0.85 * measured <= estimate <= 1.5 * measured, (name, frames, batch, measured, estimate)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_ray_cache_estimate_is_the_bytes_a_sampling_run_keeps(name):
    """A sampled step with the sampling cache: what it keeps between steps is what ``sampling_cache_bytes`` says, and the
    step's own peak stays within the activation estimate."""
    net = NETWORKS[name]().eval()
    c = net.config
    frames, batch = 4, 2
    x = torch.randn(batch, frames, c.in_channels, c.height, c.width)
    logsnr = torch.randn(batch, frames)
    rays = torch.randn(batch, frames, c.height, c.width, c.ray_channels)
    cache = {}
    with torch.no_grad():
        net(x, logsnr, rays, cache=cache)
    kept = list({t.data_ptr(): t for entry in cache.values() for t in tree_flatten(entry[-1])[0]}.values())
    assert sum(t.numel() * t.element_size() for t in kept) == net.sampling_cache_bytes(frames, batch)
    with torch.no_grad(), LiveTensors([*net.parameters(), *net.buffers(), x, logsnr, rays, *kept]) as live:
        net(x, logsnr - 1, rays, cache=cache)
    assert live.peak <= 1.5 * net.activation_bytes(frames, batch), (name, live.peak)


def test_memory_required_grows_with_frames_resolution_and_guidance_branches():
    def model(size):
        return Syn2SeqModel(DiT3D(dit3d_preset("tiny", height=size, width=size, max_frames=16)))

    small, large = model(32), model(64)
    f32 = torch.float32
    need = small.memory_required(8, dtype=f32)
    assert small.memory_required(16, dtype=f32) > 1.8 * need  # twice the frames
    assert large.memory_required(8, dtype=f32) > 3.5 * need  # four times the pixels
    assert small.memory_required(64, dtype=f32) == small.memory_required(16, dtype=f32)  # capped at the window
    assert small.memory_required(8, guidance="vanilla", guidance_scale=2.0, dtype=f32) > 1.8 * need  # 2 branches
    assert small.memory_required(8, guidance="vanilla", guidance_scale=1.0, dtype=f32) == need  # w = 1: one
    # bf16 autocast keeps a bf16 copy of float32 weights: counted; its ray cache takes half the bytes.
    params = sum(p.numel() for p in small.network.parameters())
    ray_cache = small.network.sampling_cache_bytes(8)
    assert ray_cache > 0
    assert small.memory_required(8, dtype=torch.bfloat16) - need == 2 * params - ray_cache // 2


def test_sampler_reports_which_frames_it_generates_and_stabilization_passes_through():
    torch.manual_seed(0)
    net = DiT3D(dit3d_preset("tiny", max_frames=6)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model = Syn2SeqModel(net)
    K = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    track = torch.eye(4).repeat(10, 1, 1)
    track[:, 0, 3] = torch.linspace(0, 1, 10)
    exo, ego = Cameras(torch.eye(4).repeat(2, 1, 1), K, 32, 32), Cameras(track, K, 32, 32)
    seq = build_sequence(exo, ego, exo_frames=torch.rand(2, 3, 32, 32), n_transition=2)  # 14 frames, window 6
    seen = []
    plain = model.generate(seq, steps=3, callback=lambda info: seen.append(info))
    assert seen and all(tuple(i["generate"].shape) == tuple(i["x0"].shape[:2]) for i in seen)
    assert all(bool(i["generate"].any()) for i in seen)
    stabilized = model.generate(seq, steps=3, stabilization=0.2)
    assert not torch.equal(plain.frames, stabilized.frames)  # generated history of later windows is noised
    assert torch.equal(model.generate(seq, steps=3, stabilization=0.0).frames, plain.frames)
    with pytest.raises(Syn2SeqInputError, match="stabilization"):
        model.generate(seq, steps=3, stabilization=1.0)
