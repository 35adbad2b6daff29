"""TensorBoard logging of a training run, beside ``metrics.jsonl``: ``<out>/tensorboard/``.

Every ``log_every`` steps: the loss and its part per frame role (``loss/exo``, ``loss/transition``,
``loss/ego``), the learning rate, the gradient norm, throughput (sequences per second over the last interval)
and memory (the process's peak RSS; peak allocated memory on a GPU). Every ``preview_every`` steps: the EMA
model on a fixed batch of *held-out* scenes (seeds never trained on), with every frame to generate at pure
noise and the source view clean, as at the first step of sampling: the mean squared error of its clean
estimate in model space (``heldout/x0_mse``, ``heldout/x0_mse_<role>``; the v-MSE at pure noise, whatever
the training weighting) and an image of ground truth over the model's one-shot estimate (``heldout/x0``),
one row per sequence; and, with ``preview_steps`` > 0, a real sample of the same scenes (the sampler's
``full_sequence`` schedule in ``preview_steps`` DDIM steps, seed 0): a video ``heldout/sample`` (ground truth
above the sample, the sequences side by side, one video frame per sequence frame; an animated GIF in
TensorBoard's image tab, encoded with Pillow, as ``add_video`` would with moviepy) and the sample's PSNR
against ground truth per generated role (``heldout/sample_psnr``, ``heldout/sample_psnr_<role>``). Needs the ``tensorboard`` package (``pip install -e '.[train]'``); without it the run
says so once and logs to the JSONL file only. ``tensorboard --logdir runs/`` shows every run.
"""

from __future__ import annotations

import io
import resource
import sys
import time
from pathlib import Path

import torch

PREVIEW_SEQUENCES = 4
PREVIEW_FPS = 4


def _writer(folder: Path, step: int = 0):
    """A SummaryWriter for a run resumed at ``step``: the events a killed run logged after it (its redone steps)
    are purged, as metrics.jsonl is cut back to the checkpoint, so each step keeps one value."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed: logging to metrics.jsonl only (pip install tensorboard)",
              file=sys.stderr)
        return None
    return SummaryWriter(str(folder), purge_step=step + 1 if step else None)


class Board:
    """The run's TensorBoard writer (rank 0 only; a no-op when disabled or unavailable)."""

    def __init__(self, out: Path, cfg, device: torch.device, enabled: bool, step: int = 0):
        """step: the step the run starts (resumes) at."""
        self.cfg, self.device = cfg, device
        self.writer = _writer(Path(out) / "tensorboard", step) if enabled else None
        self._last = (time.perf_counter(), None)
        self._preview = None

    def scalars(self, step: int, record: dict) -> None:
        if self.writer is None:
            return
        w = self.writer
        w.add_scalar("loss/total", record["loss"], step)
        for key, value in record.items():
            if key.startswith("loss_") and key != "loss_ema":
                w.add_scalar(f"loss/{key[5:]}", value, step)
        w.add_scalar("optim/lr", record["lr"], step)
        w.add_scalar("optim/grad_norm", record["grad_norm"], step)
        now = time.perf_counter()
        t0, s0 = self._last
        if s0 is not None and now > t0:
            w.add_scalar("speed/sequences_per_s", (step - s0) * self.cfg.optim.batch_size / (now - t0), step)
        self._last = (now, step)
        w.add_scalar("memory/peak_rss_gb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, step)
        if self.device.type == "cuda":
            w.add_scalar("memory/peak_allocated_gb", torch.cuda.max_memory_allocated(self.device) / 2**30, step)

    def _preview_batch(self):
        if self._preview is None:
            from ..base import conventions as C
            from .batches import batch_source

            batch = batch_source(self.cfg, heldout=True)(torch.Generator().manual_seed(0), PREVIEW_SEQUENCES)
            generate = batch.loss_mask > 0
            if self.cfg.stage == "finetune":  # the source view clean, everything else at pure noise
                generate = batch.roles != C.ROLE_EXO
            batch.noise_t[:] = torch.where(generate, 1.0, 0.0)
            batch.loss_mask[:] = generate.float()
            self._preview = batch.to(self.device)
        return self._preview

    @torch.no_grad()
    def preview(self, step: int, ema, schedule) -> None:
        if self.writer is None:
            return
        from ..dfot.objective import diffusion_loss
        from ..generation.pipeline import role_losses, to_model_space

        batch = self._preview_batch()
        config = ema.config
        was_training = ema.training
        ema.eval()
        try:
            loss, info = diffusion_loss(ema, to_model_space(batch.frames, config), rays=batch.rays,
                                        noise_t=batch.noise_t, loss_mask=batch.loss_mask, schedule=schedule,
                                        generator=torch.Generator(batch.frames.device).manual_seed(0),
                                        weighting="v")  # at pure noise: the MSE of the x0 estimate
        finally:
            ema.train(was_training)
        self.writer.add_scalar("heldout/x0_mse", float(loss), step)
        for key, value in role_losses(info["frame_loss"], batch).items():
            self.writer.add_scalar(f"heldout/x0_mse_{key[5:]}", float(value), step)
        std = torch.tensor(config.data_std, device=batch.frames.device)[:, None, None]
        mean = torch.tensor(config.data_mean, device=batch.frames.device)[:, None, None]
        x0 = (info["x0_pred"] * std + mean).clamp(0, 1)
        rows = []
        for truth, pred in zip(batch.frames, x0):  # [T, C, H, W] each: truth above, estimate below
            rows.append(torch.cat([torch.cat(list(truth), -1), torch.cat(list(pred), -1)], -2))
        self.writer.add_image("heldout/x0", torch.cat(rows, -2).cpu(), step)
        if self.cfg.preview_steps > 0:
            samples = self.sample(ema, schedule, self.cfg.preview_steps)
            self._scalar_psnr(step, samples, batch)
            self._video("heldout/sample", torch.cat([batch.frames, samples], -2), step)

    @torch.no_grad()
    def sample(self, ema, schedule, steps: int) -> torch.Tensor:
        """[B, T, 3, H, W] in [0, 1]: the sampler's frames for the preview batch (its clean frames as
        context, the frames at noise 1 generated) in ``steps`` steps, seed 0, float32."""
        from ..base import conventions as C
        from ..dfot.sampler import sample
        from ..dfot.scheduling import scheduling_matrix
        from ..generation.pipeline import from_model_space, to_model_space

        batch = self._preview_batch()
        generate = batch.noise_t >= 1
        mask = torch.where(generate, C.MASK_GENERATE, C.MASK_CONTEXT)
        context = to_model_space(batch.frames, ema.config)
        was_training = ema.training
        ema.eval()
        try:
            x0 = sample(ema, tuple(context.shape), scheduling_matrix("full_sequence", steps, context.shape[1]),
                        schedule=schedule, context=context, context_mask=mask, rays=batch.rays,
                        generator=torch.Generator(context.device).manual_seed(0))
        finally:
            ema.train(was_training)
        frames = from_model_space(x0.float(), ema.config).clamp(0, 1)
        return torch.where(generate[..., None, None, None], frames, batch.frames)

    def _scalar_psnr(self, step: int, samples: torch.Tensor, batch) -> None:
        from ..base import conventions as C
        from ..metrics.frames import psnr

        generated = batch.noise_t >= 1
        scores = psnr(samples, batch.frames)
        self.writer.add_scalar("heldout/sample_psnr", float(scores[generated].mean()), step)
        for role, name in ((C.ROLE_TRANSITION, "transition"), (C.ROLE_EGO, "ego")):
            part = generated & (batch.roles == role)
            if part.any():
                self.writer.add_scalar(f"heldout/sample_psnr_{name}", float(scores[part].mean()), step)

    def _video(self, tag: str, videos: torch.Tensor, step: int) -> None:
        """``videos`` [B, T, 3, H, W] in [0, 1] as one animated GIF, the B videos side by side."""
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        tiled = torch.cat(list(videos), -1)  # [T, 3, H, B*W]
        pixels = (tiled * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        images = [Image.fromarray(frame) for frame in pixels]
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                       duration=1000 // PREVIEW_FPS, loop=0)
        height, width = pixels.shape[1:3]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
        # what SummaryWriter.add_video writes, without its moviepy dependency
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
