"""Training checkpoints that survive any crash, snapshots and the initial weights of a run.

Every ``checkpoint_every`` steps (and on Ctrl-C / SIGTERM / the time limit) the loop writes
``<out>/checkpoint.pt`` (model, EMA, optimiser, step, elapsed time) and keeps the one before as
``<out>/checkpoint.prev.pt``. A new checkpoint goes to a hidden temporary file, is fsynced and read back (keys,
types, step, zip CRCs) before it replaces anything, so a crash or ``kill -9`` at any moment leaves at least one good
checkpoint; a damaged newest one falls back to the previous with :class:`CheckpointFallbackWarning`. Checkpoints
are read with ``torch.load(weights_only=True)``; the EMA model and snapshots are safetensors with the run's
sampling record.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from ..base.errors import Syn2SeqInputError, require
from ..dfot.lora import LORA_NAME
from .config import TrainConfig

LOG_NAME = "metrics.jsonl"
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
MODEL_NAME = "model.safetensors"


# What a training checkpoint holds, with the type each entry must have.
CHECKPOINT_KEYS: dict[str, type | tuple[type, ...]] = {
    "config": str, "step": int, "elapsed": (int, float), "model": dict, "ema": dict, "optimizer": dict}


class CheckpointFallbackWarning(UserWarning):
    """The newest checkpoint of a run folder is damaged and the previous one is used (``syn2seq train`` prints
    it as one line: ``syn2seq train: warning: ...``)."""


class _DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be used; the message says what is wrong with it."""


def _type_names(kind) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def _read_checkpoint(path: Path, keys: dict = CHECKPOINT_KEYS, *, mmap: bool = False, crc: bool = True) -> dict:
    """The state dict in checkpoint file ``path``, or :class:`_DamagedCheckpoint` saying what is wrong:
    missing, empty, truncated or corrupt (zip CRCs when ``crc``), not a checkpoint, missing ``keys`` or an
    entry of the wrong type. ``mmap``: map the tensors instead of reading them (a check of a fresh file)."""
    import zipfile

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _DamagedCheckpoint("missing") from None
    if size == 0:
        raise _DamagedCheckpoint("an empty file (0 bytes)")
    if crc and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except Exception as e:  # BadZipFile, EOFError, zlib errors ...: all mean a damaged archive
            bad = f"{type(e).__name__}: {e}"
        if bad is not None:
            raise _DamagedCheckpoint(f"corrupt ({size} bytes; bad zip record {bad})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # PytorchStreamReader's RuntimeError, EOFError, UnpicklingError, ...
        with open(path, "rb") as f:
            zipped = f.read(2) == b"PK"
        reason = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]  # torch's first sentence
        kind = "truncated or corrupt" if zipped else "not a PyTorch checkpoint"
        raise _DamagedCheckpoint(f"{kind} ({size} bytes; {type(e).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise _DamagedCheckpoint(f"not a training checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = [k for k in keys if k not in state]
    if missing:
        raise _DamagedCheckpoint(f"not a complete training checkpoint (no {', '.join(missing)})")
    for key, kind in keys.items():
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _DamagedCheckpoint(f"'{key}' is a {type(value).__name__}, expected {_type_names(kind)}")
    for key in ("model", "ema"):
        if key in keys and not all(isinstance(v, torch.Tensor) for v in state[key].values()):
            raise _DamagedCheckpoint(f"'{key}' is not a state dict of tensors")
    if "optimizer" in keys and not {"state", "param_groups"} <= set(state["optimizer"]):
        raise _DamagedCheckpoint("'optimizer' is not an optimizer state dict (no state / param_groups)")
    if "step" in keys and state["step"] < 0:
        raise _DamagedCheckpoint(f"'step' is {state['step']}, expected >= 0")
    return state


def latest_checkpoint(out: str | Path, keys: dict = CHECKPOINT_KEYS, *,
                      warn: bool = True) -> tuple[dict, Path] | None:
    """``(state, path)`` of the newest good checkpoint in run folder ``out``: ``checkpoint.pt``, else
    ``checkpoint.prev.pt`` (with a warning naming the damaged file and what is wrong with it); None when the
    folder holds neither. Raises :class:`Syn2SeqInputError` naming each file and its problem when none is
    readable."""
    out = Path(out)
    paths = [out / CHECKPOINT_NAME, out / PREVIOUS_CHECKPOINT_NAME]
    if not any(p.exists() for p in paths):
        return None
    problems = []
    for path in paths:
        try:
            state = _read_checkpoint(path, keys)
        except _DamagedCheckpoint as e:
            problems.append((path, str(e)))
            continue
        if problems and warn:
            bad, problem = problems[0]
            warnings.warn(f"{bad}: {problem}; using the previous checkpoint {path.name} "
                          f"(step {state.get('step', '?')}) instead", CheckpointFallbackWarning, stacklevel=2)
        return state, path
    raise Syn2SeqInputError(str(out), f"a readable training checkpoint ({CHECKPOINT_NAME} or "
                            f"{PREVIOUS_CHECKPOINT_NAME})", "; ".join(f"{p.name}: {why}" for p, why in problems),
                            f"Move {CHECKPOINT_NAME} and {PREVIOUS_CHECKPOINT_NAME} out of this folder to start "
                            f"the run over from step 0 (its {LOG_NAME} then starts over too), or use a new --out "
                            "folder")


def load_checkpoint(out: str | Path):
    """The state of the newest good checkpoint in run folder ``out`` (see :func:`latest_checkpoint`), or
    None when it has none."""
    found = latest_checkpoint(out)
    return None if found is None else found[0]


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (POSIX; elsewhere a folder cannot be opened for this)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _readback_problem(path: Path, state: dict) -> str | None:
    """What keeps the freshly written ``path`` from being ``state`` when read back (None: nothing)."""
    try:
        back = _read_checkpoint(path, mmap=True)
    except _DamagedCheckpoint as e:
        return str(e)
    for key in ("step", "config"):
        if back[key] != state[key]:
            return f"it holds another {key}"
    for key in ("model", "ema"):
        if list(back[key]) != list(state[key]):
            return f"its '{key}' holds other tensors"
    return None


def _good_step(path: Path) -> int | None:
    """The step of the checkpoint at ``path`` if it is readable (structure only: it was verified when
    written), else None."""
    try:
        return int(_read_checkpoint(path, mmap=True, crc=False)["step"])
    except _DamagedCheckpoint:
        return None


def _keep_as_previous(current: Path, previous: Path) -> None:
    """Make ``previous`` the file ``current`` is. With a hard link ``current`` stays in place throughout;
    where the file system has none, ``current`` is renamed, and until the new one replaces it the folder
    holds only ``previous`` (which loading then uses, with a warning)."""
    link = previous.with_name(f".{previous.name}.{os.getpid()}.link")
    try:
        link.unlink(missing_ok=True)
        try:
            os.link(current, link)
        except (OSError, NotImplementedError):
            os.replace(current, previous)
        else:
            os.replace(link, previous)
    finally:
        link.unlink(missing_ok=True)


def _write_checkpoint(out: Path, state: dict) -> Path:
    """Write ``state`` as ``out/checkpoint.pt``, keeping the good checkpoint it replaces as
    ``checkpoint.prev.pt``. The new file is written under a hidden name, fsynced and read back (keys,
    types, step, zip CRCs) before anything is replaced, so a crash at any moment leaves at least one good
    checkpoint. A file that does not read back raises ``RuntimeError`` and the earlier checkpoints stay."""
    from ..io.atomic import temp_file_near

    current, previous = out / CHECKPOINT_NAME, out / PREVIOUS_CHECKPOINT_NAME
    tmp = temp_file_near(current)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        problem = _readback_problem(tmp, state)
        if problem is not None:
            kept = [p.name for p in (current, previous) if p.exists()]
            raise RuntimeError(f"{current}: the checkpoint of step {state['step']} did not read back after "
                               f"writing ({problem}); kept {', '.join(kept) or 'no earlier checkpoint'}. Check "
                               f"the disk under {out} (free space, errors)")
        # A checkpoint of the same step (a rerun that trained nothing) replaces it and keeps the older one
        # as the previous; a damaged current one is not kept.
        if _good_step(current) not in (None, state["step"]):
            _keep_as_previous(current, previous)
        os.replace(tmp, current)
        _fsync_dir(out)
    finally:
        tmp.unlink(missing_ok=True)
    return current


def remove_partial_files(out: Path) -> None:
    """Hidden temporary files of checkpoint, model and log writes that a killed run left in ``out``."""
    patterns = [f".{Path(n).stem}.*.partial{Path(n).suffix}" for n in (CHECKPOINT_NAME, MODEL_NAME)]
    patterns += [f".{Path(LOG_NAME).stem}.*.partial.tmp", f".{PREVIOUS_CHECKPOINT_NAME}.*.link"]
    for pattern in patterns:
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)


def save_checkpoint(out: Path, cfg: TrainConfig, model_state: dict, ema, optimizer_state: dict, step: int,
                    elapsed: float) -> None:
    """Write ``out/checkpoint.pt`` (the one it replaces becomes ``checkpoint.prev.pt``) and
    ``out/model.safetensors`` (the EMA model with its training record). The model and optimizer as (full)
    state dicts, the EMA as a module."""
    _write_checkpoint(out, {"config": cfg.to_json(), "step": step, "elapsed": elapsed,
                            "model": model_state, "ema": ema.state_dict(), "optimizer": optimizer_state})
    _save_ema(out / MODEL_NAME, cfg, ema, step, elapsed)


def _save_ema(path: Path, cfg: TrainConfig, ema, step: int, elapsed: float) -> Path:
    """The EMA model as a loadable model file; in a LoRA run also its adapters alone (``lora.safetensors``
    beside it) while the model file holds the base with the adapters merged in."""
    from ..dfot.checkpoint import save_model, save_state_dict

    record = _training_record(cfg, step, elapsed)
    if not cfg.lora.rank:
        return save_model(path, ema, extra_metadata=record)
    from ..dfot.lora import KEY_LORA_BASE, base_record, merged_state_dict, save_lora

    # The adapters keep the run's record (how its model.safetensors is used) and the base's (what they fit).
    save_lora(path.with_name(LORA_NAME if path.name == MODEL_NAME else path.stem + ".lora.safetensors"), ema,
              cfg.lora, extra_metadata={**record, KEY_LORA_BASE: json.dumps(base_record(cfg.init_from))})
    return save_state_dict(path, merged_state_dict(ema, cfg.lora), ema.config, record)


def _training_record(cfg: TrainConfig, step: int, elapsed: float) -> dict:
    return {"training": json.dumps({"config": json.loads(cfg.to_json()), "step": step,
                                    "elapsed_s": round(elapsed, 1)})}


def snapshot_path(out: str | Path, step: int) -> Path:
    return Path(out) / "snapshots" / f"model_step{step:06d}.safetensors"


def save_snapshot(out: Path, cfg: TrainConfig, ema, step: int, elapsed: float) -> Path:
    """Keep this step's EMA model (a loadable model file with its training record) beside the run."""
    path = snapshot_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save_ema(path, cfg, ema, step, elapsed)


def initial_weights(source: str | Path) -> dict:
    """Weights to start from: a model ``.safetensors`` (EMA weights), a run's ``checkpoint.pt`` (its raw,
    not-averaged weights) or a run folder (its newest good checkpoint, see :func:`latest_checkpoint`)."""
    from ..dfot.checkpoint import load_model

    path = Path(source)
    hint = f"Point init_from at a good checkpoint, a run folder or a model file (a run's {MODEL_NAME})"
    if path.is_dir():
        require(any((path / n).exists() for n in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME)), "init_from",
                "an existing model file, checkpoint or run folder", str(path / CHECKPOINT_NAME))
        try:
            return latest_checkpoint(path, {"model": dict})[0]["model"]
        except Syn2SeqInputError as e:
            raise Syn2SeqInputError(f"init_from {e.name}", e.expected, e.found, hint) from None
    require(path.exists(), "init_from", "an existing model file, checkpoint or run folder", str(path))
    if path.suffix == ".pt":
        try:
            return _read_checkpoint(path, {"model": dict})["model"]
        except _DamagedCheckpoint as e:
            raise Syn2SeqInputError("init_from", "a readable training checkpoint", f"{path}: {e}", hint) from None
    return load_model(path).state_dict()
