"""``syn2seq selfcheck``: check the installation and the camera -> sequence -> rays pipeline end to end."""

from __future__ import annotations

import importlib
import time


def add_arguments(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")


def run(args) -> int:
    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else print
    for name in ("torch", "einops", "safetensors", "kornia", "numpy", "cv2", "scipy", "av"):
        module = importlib.import_module(name)
        say(f"  {name:<12} {getattr(module, '__version__', '?')}")

    import torch

    from ..geometry import Cameras, look_at
    from ..sequence import build_sequence

    exo = Cameras(look_at(torch.tensor([3.0, 0.0, 2.0]), torch.zeros(3)), [0.9, 0.9, 0.5, 0.5], 32, 32)
    eyes = torch.tensor([[0.3, 0.0, 1.6]]) + torch.linspace(0, 0.2, 6)[:, None] * torch.tensor([0.0, 1.0, 0.0])
    ego = Cameras(look_at(eyes, torch.tensor([0.8, 0.0, 0.8]).expand(6, 3)), [0.6, 0.6, 0.5, 0.5], 32, 32)
    frames = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seq = build_sequence(exo, ego, exo_frames=frames, n_transition=3)
    rays = seq.rays()
    checks = {
        "sequence length = 4 exo + 3 transition + 6 ego": len(seq) == 13,
        "first camera is the reference (zero moments)": float(rays[0, ..., 3:].abs().max()) < 1e-6,
        "ray directions are unit vectors": torch.allclose(rays[..., :3].norm(dim=-1), torch.ones(()), atol=1e-5),
        "transition cameras lie between exo and ego": bool(
            (seq.cameras.centers[4:7, 0] < 3.0).all() and (seq.cameras.centers[4:7, 0] > 0.3).all()),
    }
    for name, ok in checks.items():
        say(f"  [{'ok' if ok else 'FAIL'}] {name}")
    ok = all(checks.values())
    print(f"syn2seq selfcheck: {'OK' if ok else 'FAILED'} ({time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1
