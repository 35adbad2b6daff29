"""Several takes generated at once: their network calls share one batch (``syn2seq eval --batch-size N``).

Each take runs its own, unchanged sampling (its own noise generator and seed, windows, guidance branches) in a
worker thread of its own; only the network calls meet: :class:`Batcher` holds each call until every take that is
generating has one waiting, then runs them as one call of the network, the inputs concatenated along the batch
axis (calls of different shapes, or with and without rays or a pose mask, go in separate calls), and hands each
take its rows. So a batched take gets the same noise and the same arithmetic as an unbatched one; its frames
differ only by the float rounding of a larger matrix product (a test holds them equal to float tolerance). A take
counts as generating while it is inside ``generate`` / ``generate_stream`` / ``predict_mean`` (not while it decodes
or scores its frames between windows), so a take busy elsewhere never holds the others' batch.

Each take's sampler passes the same rays tensor at every step of a window, so while the same takes meet in a group,
their concatenated rays (and pose masks) are built once and the network gets one ray cache for the group
(``DiT3D.forward``'s ``cache``), rebuilt when the group's takes or windows change. That cache announces the noise
levels every take of the group announced in its own (``cache["noise_levels"]``, their union), and each call passes
on the frames the takes read (``needed``, all of a take that gives none), to a network that takes them
(``UViT3DPose.forward``): batched takes skip the work an unbatched one skips.

The network call runs in the thread of one of the waiting takes, inside its sampler, so under the same autocast
and no-grad state as an unbatched call (every take uses the same model and dtype). An error in a call reaches
every take of that batch; :meth:`Batcher.cancel` (Ctrl-C in the main thread) stops every take at its next call.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from ..dfot.model import tensor_version


class Cancelled(RuntimeError):
    """Raised in a take's thread at its next network call once the batch run is cancelled."""


class _Call:
    __slots__ = ("args", "cache", "done", "error", "needed", "pose_mask", "result")

    def __init__(self, args: tuple, pose_mask, needed=None, cache=None):
        self.args, self.pose_mask, self.needed, self.cache = args, pose_mask, needed, cache
        self.result = self.error = None
        self.done = False

    def key(self) -> tuple:
        """Calls that can share one network call: the same shapes past the batch axis, rays or none, a pose
        mask or none."""
        x, logsnr, rays = self.args
        return (tuple(x.shape[1:]), x.dtype, tuple(logsnr.shape[1:]), None if rays is None else tuple(rays.shape[1:]),
                self.pose_mask is not None)


class Batcher:
    """Gathers the network calls of the takes that are generating into batched calls of ``network``."""

    def __init__(self, network):
        self.network = network
        self._cond = threading.Condition()
        self._waiting: list[_Call] = []
        self._active = 0
        self._running = False
        self._cancelled = False
        self._local = threading.local()
        self.calls = 0  # network calls made, and the takes' calls they served
        self.served = 0
        # Per group key: the takes' rays and pose masks last batched together, their concatenation and the
        # network's ray cache for it (one entry per key: a new combination replaces the old one).
        self._ray_groups: dict[tuple, tuple] = {}
        from ..dfot.sampler import accepts_keyword

        self._takes_cache = accepts_keyword(network, "cache")
        self._takes_needed = accepts_keyword(network, "needed")

    # A take counts as generating inside these blocks (nested blocks count once).
    @contextmanager
    def generating(self):
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                self._active += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def __call__(self, x_t: Tensor, logsnr: Tensor, rays: Tensor | None, pose_mask: Tensor | None = None,
                 needed: Tensor | None = None, cache: dict | None = None) -> Tensor:
        """One take's network call; ``needed`` [B, T] bool: the frames it reads; ``cache``: its sampling run's dict,
        read for the noise levels it announces (the network gets the group's cache instead)."""
        call = _Call((x_t, logsnr, rays), pose_mask, needed, cache)
        with self._cond:
            if self._cancelled:
                raise Cancelled("the batch run was cancelled")
            self._waiting.append(call)
            self._cond.notify_all()
            while not call.done:
                if self._cancelled:
                    self._waiting = [c for c in self._waiting if c is not call]
                    raise Cancelled("the batch run was cancelled")
                if not self._running and len(self._waiting) >= max(1, self._active):
                    batch, self._waiting = self._waiting, []
                    self._running = True
                    self._cond.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cond.acquire()
                        self._running = False
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def _run(self, batch: list[_Call]) -> None:
        groups: dict[tuple, list[_Call]] = {}
        for call in batch:
            groups.setdefault(call.key(), []).append(call)
        for calls in groups.values():  # a stable order (takes arrive in any order), so the ray cache is reused
            calls.sort(key=lambda c: id(c.args[2]))
        for calls in groups.values():
            try:
                x = torch.cat([c.args[0] for c in calls])
                logsnr = torch.cat([c.args[1] for c in calls])
                rays, kwargs = self._rays_of(calls)
                if self._takes_needed and any(c.needed is not None for c in calls):
                    kwargs = {**kwargs, "needed": torch.cat([
                        torch.ones(c.args[0].shape[:2], dtype=torch.bool, device=c.args[0].device)
                        if c.needed is None else c.needed for c in calls])}
                out = self.network(x, logsnr, rays, **kwargs)
                self.calls += 1
                self.served += len(calls)
                for call, part in zip(calls, out.split([len(c.args[0]) for c in calls])):
                    call.result = part
            except BaseException as e:  # noqa: BLE001 -- every take of the batch sees (and raises) the error
                for call in calls:
                    call.error = e
            for call in calls:
                call.done = True


    def _rays_of(self, calls: list[_Call]) -> tuple[Tensor | None, dict]:
        """The group's concatenated rays and its keywords (pose mask, ray cache with the takes' announced noise
        levels), reused while the same rays and pose-mask tensors come back together (as each take's sampler passes
        them at every step of a window)."""
        if calls[0].args[2] is None:
            if calls[0].pose_mask is None:
                return None, {}
            return None, {"pose_mask": torch.cat([c.pose_mask for c in calls])}
        parts = tuple((c.args[2], c.pose_mask, tensor_version(c.args[2])) for c in calls)
        key = calls[0].key()
        entry = self._ray_groups.get(key)
        same = entry is not None and len(entry[0]) == len(parts) and all(
            a[0] is b[0] and a[1] is b[1] and a[2] == b[2] for a, b in zip(entry[0], parts))
        if not same:
            rays = torch.cat([c.args[2] for c in calls])
            kwargs = {}
            if calls[0].pose_mask is not None:
                kwargs["pose_mask"] = torch.cat([c.pose_mask for c in calls])
            if self._takes_cache:
                kwargs["cache"] = {}
                levels = [None if c.cache is None else c.cache.get("noise_levels") for c in calls]
                if all(isinstance(v, Tensor) for v in levels):  # every take announced its levels: so does the group
                    kwargs["cache"]["noise_levels"] = torch.cat(levels).unique()
            entry = self._ray_groups[key] = (parts, rays, kwargs)
        return entry[1], entry[2]


class _BatchedNetwork:
    """The model's network as one take's thread sees it: calls go through the :class:`Batcher`; everything else
    (config, parameters, ...) is the network's own."""

    def __init__(self, network, batcher: Batcher):
        self._network, self._batcher = network, batcher

    def __call__(self, x_t, logsnr, rays, pose_mask=None, cache=None, needed=None):
        # ``cache`` (the take's own) is read for its announced noise levels, not passed on: the batcher keeps one
        # per group of takes (Batcher._rays_of).
        return self._batcher(x_t, logsnr, rays, pose_mask, needed=needed, cache=cache)

    def __getattr__(self, name):
        return getattr(self._network, name)


def batched_view(model, batcher: Batcher):
    """A shallow copy of ``model`` (a ``pipeline.Syn2SeqModel``) whose network calls go through ``batcher`` and
    whose sampling methods count as generating (:meth:`Batcher.generating`); weights and settings are shared."""
    view = copy.copy(model)
    view.network = _BatchedNetwork(model.network, batcher)
    cls = type(model)

    def generate(*a, **k):
        with batcher.generating():
            return cls.generate(view, *a, **k)

    def predict_mean(*a, **k):
        with batcher.generating():
            return cls.predict_mean(view, *a, **k)

    def generate_stream(*a, **k):
        frames = cls.generate_stream(view, *a, **k)
        while True:
            with batcher.generating():  # generating only while inside the stream, not while its frames are used
                try:
                    item = next(frames)
                except StopIteration:
                    return
            yield item

    view.generate, view.predict_mean, view.generate_stream = generate, predict_mean, generate_stream
    return view


def map_batched(fn: Callable, items: Iterable, model, batch_size: int, stats: dict | None = None
                ) -> Iterator[tuple[int, object]]:
    """``fn(item, model_view)`` for every item, ``batch_size`` at a time in worker threads whose network calls are
    batched; yields ``(position, result)`` as each finishes (not in order). ``batch_size`` 1: in this thread, in
    order, with ``model`` itself. The first error stops the run: takes not started are dropped, running ones stop
    at their next network call, and the error is raised here once they have ended. ``stats``: filled with
    ``calls`` (network calls made) and ``served`` (the takes' calls they served; their ratio is the mean batch)."""
    items = list(items)
    if batch_size <= 1 or len(items) <= 1 or model is None:
        for i, item in enumerate(items):
            yield i, fn(item, model)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    batcher = Batcher(model.network)
    if stats is not None:
        stats["batcher"] = batcher
    view = batched_view(model, batcher)
    pool = ThreadPoolExecutor(max_workers=min(batch_size, len(items)), thread_name_prefix="syn2seq-take")
    pending = {}
    queue = list(enumerate(items))
    failed = None
    try:
        while queue or pending:
            while queue and len(pending) < batch_size and failed is None:
                i, item = queue.pop(0)
                pending[pool.submit(fn, item, view)] = i
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                if future.exception() is not None:
                    if failed is None:
                        failed = future.exception()
                        batcher.cancel()
                        queue.clear()
                    continue
                if failed is None:
                    yield i, future.result()
    except BaseException:
        batcher.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failed is not None:
        raise failed


# --- benchmark: python -m syn2seq_core.evaluation.batching --takes DIR [--batch-size 1 4] [--rounds 3] --------------------
def bench(takes, batch_sizes=(1, 4), rounds: int = 3, steps: int | None = None, model_path=None,
          device: str = "cpu") -> list[dict]:
    """Generate every take of the folder ``takes`` at each batch size in turn, ``rounds`` times (interleaved, so a
    shared machine's drifting load reaches every size alike): one row per (round, batch size) with wall and
    process CPU seconds (all threads) and takes per second. Generation only (no decoding for scores)."""
    import time

    from ..data.takes import find_takes, load_take
    from ..generation.pipeline import load_model
    from ..generation.takes import generate_take

    model = load_model(model_path, device=device)
    loaded = [load_take(t) for t in find_takes(takes)]

    def generate(take, m):
        return generate_take(take, m, steps=steps, seed=0).generated

    rows = []
    for r in range(rounds):
        for b in batch_sizes:
            stats: dict = {}
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in map_batched(generate, loaded, model, b, stats):
                pass
            if str(device).startswith("cuda"):
                torch.cuda.synchronize(device)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            batcher = stats.get("batcher")
            rows.append({"round": r, "batch_size": b, "takes": len(loaded), "wall_s": wall, "cpu_s": cpu,
                         "takes_per_s": len(loaded) / wall,
                         "mean_batch": batcher.served / batcher.calls if batcher and batcher.calls else 1.0})
    return rows


def _median(values: list[float]) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def main(argv=None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m syn2seq_core.evaluation.batching",
                                description="throughput of --batch-size: takes generated per second at each size")
    p.add_argument("--takes", required=True, help="a folder of take folders")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 4])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    rows = bench(args.takes, args.batch_size, args.rounds, args.steps, args.model, args.device)
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    base = args.batch_size[0]
    for key in ("wall_s", "cpu_s"):
        per = {b: _median([r[key] for r in rows if r["batch_size"] == b]) for b in args.batch_size}
        print(f"median {key} per run: " + ", ".join(f"batch {b}: {per[b]:.2f}" for b in args.batch_size)
              + "; throughput ratio vs batch " + str(base) + ": "
              + ", ".join(f"{b}: {per[base] / per[b]:.2f}x" for b in args.batch_size if b != base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
