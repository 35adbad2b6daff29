"""The ``syn2seq`` command (also ``python -m syn2seq_core``).

Each subcommand lives in a module of ``syn2seq_core/commands/`` that defines ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs,
so ``syn2seq --help`` is fast and one broken command cannot break the others.

Numbers given on the command line are checked against :mod:`syn2seq_core.base.limits` while parsing. A parser
may set ``_check_options`` (``parser.set_defaults``) to a function of the parsed arguments that checks
options together (seed spans, memory estimates) before the command runs.

Exit statuses: 0 done; 1 failed (one line on stderr naming the error and the log file holding the full
traceback; ``--debug`` or ``SYN2SEQ_DEBUG=1`` prints the traceback instead); 2 bad input
(:class:`Syn2SeqInputError`, or an option argparse refuses); 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import commands
from .base.errors import Syn2SeqInputError

# command name -> (module under syn2seq_core.commands, one-line help). exo2ego and ego2exo share a
# module; it reads ``args.command`` for the direction.
COMMANDS = {
    "demo": ("demo", "exo2ego on the bundled sample take with the bundled model"),
    "selfcheck": ("selfcheck", "check the installation and the camera/sequence pipeline"),
    "exo2ego": ("generate", "generate the ego video of a take from its exo video and both camera tracks"),
    "ego2exo": ("generate", "generate the exo video of a take from its ego video and both camera tracks"),
    "interpolate": ("interpolate", "first-last-frame interpolation between two images, or inside a video"),
    "image2video": ("image2video", "a video along a camera track from one or more images (any DFoT-family model)"),
    "render-synthetic": ("render_synthetic", "render procedural exo/ego takes with exact cameras"),
    "cameras": ("cameras", "estimate a video's camera track from its pixels (structure from motion)"),
    "index-egoexo4d": ("index_egoexo4d", "index the usable takes of a local Ego-Exo4D release (split, cameras)"),
    "prepare": ("prepare", "turn takes into training triplets written as resumable tar shards"),
    "train": ("train", "train or finetune a DFoT model from a config file"),
    "eval": ("evaluate", "evaluate a model on a folder of takes (PSNR/SSIM/LPIPS on generated frames)"),
    "compare": ("compare", "paired per-take differences between eval reports (ablations)"),
    "bench": ("bench", "speed and memory benchmarks (io, sampler, interpolation, render)"),
    "convert-dfot": ("convert_dfot", "convert a DFoT Lightning checkpoint to safetensors"),
    "download": ("download", "download published weights (needs internet; explicit only)"),
}

DEBUG_ENV = "SYN2SEQ_DEBUG"
DEBUG_HELP = f"on an unexpected error print the full traceback instead of writing it to a log file (or {DEBUG_ENV}=1)"


def _load(name: str):
    """The module of command ``name``, imported relative to this package (it works under any package name)."""
    return importlib.import_module(f".{COMMANDS[name][0]}", commands.__name__)


def _chosen(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syn2seq", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", default=False, help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported; the others are listed by name.
    chosen = _chosen(argv)
    for name, (_, help_text) in COMMANDS.items():
        if name == chosen:
            module = _load(name)
            p = sub.add_parser(name, help=help_text, description=help_text)
            module.add_arguments(p)
            # SUPPRESS: without --debug here, the value parsed before the command name stays.
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
            p.set_defaults(_module=module)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _env_debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# --- unexpected failures -----------------------------------------------------------------------------

def log_dir() -> Path:
    """The per-user folder for tracebacks: ``$XDG_STATE_HOME/syn2seq/logs`` (``~/.local/state/...``),
    ``%LOCALAPPDATA%\\syn2seq\\logs`` on Windows."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "syn2seq" / "logs"


def _prefix(command: str | None) -> str:
    return f"syn2seq {command}" if command else "syn2seq"


def _log_name(command: str | None) -> str:
    """``syn2seq-exo2ego-20261201-153012-4242.log`` (``-rank1`` before the pid in a torchrun worker)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rank = os.environ.get("RANK", "") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else ""
    rank = f"-rank{rank}" if rank.isdigit() else ""
    return f"{_prefix(command).replace(' ', '-')}-{stamp}{rank}-{os.getpid()}.log"


def write_traceback(command: str | None, argv: list[str], exc: BaseException) -> Path:
    """Write the traceback of ``exc`` with the command line and versions; returns the file.

    Tries :func:`log_dir`, then the system temporary folder; raises ``OSError`` when neither is writable.
    """
    from .io.atomic import write_text_atomic

    versions = [f"python {platform.python_version()}", f"syn2seq {_version()}"]
    if "torch" in sys.modules:  # never import it here: it may be what failed
        versions.append(f"torch {getattr(sys.modules['torch'], '__version__', '?')}")
    text = (f"{_prefix(command)} failed at {time.strftime('%Y-%m-%d %H:%M:%S %z')} (pid {os.getpid()})\n"
            f"command: syn2seq {' '.join(argv)}\n"
            f"cwd: {os.getcwd()}\n"
            f"{', '.join(versions)}, {platform.platform()}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    name = _log_name(command)
    folders = [log_dir(), Path(tempfile.gettempdir()) / f"syn2seq-logs-{_user()}"]
    last_error: OSError | None = None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return write_text_atomic(folder / name, text)
        except OSError as e:
            last_error = e
    raise last_error


def _version() -> str:
    from . import __version__

    return __version__


def _user() -> str:
    try:
        return str(os.getuid())
    except AttributeError:  # Windows
        return os.environ.get("USERNAME", "user")


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__):  # torch.OutOfMemoryError (CUDA, MPS)
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


_OS_HINTS = {getattr(errno, name): hint for name, hint in (
    ("ENOSPC", "no space left on the disk: free some or write elsewhere"),
    ("EDQUOT", "disk quota exceeded: free some space or write elsewhere"),
    ("EACCES", "permission denied: check who owns the path, or write elsewhere"),
    ("EPERM", "operation not permitted: check who owns the path, or write elsewhere"),
    ("EROFS", "read-only file system: write elsewhere"),
    ("ENOENT", "no such file or folder"),
    ("EMFILE", "too many open files"),
) if hasattr(errno, name)}


def describe_failure(exc: BaseException) -> str:
    """What failed, in one line: the exception type and the first line of its message, with a plain
    statement for running out of memory or disk, and for permissions."""
    what = f"{type(exc).__name__}: {_first_line(exc)}".rstrip(": ")
    if _is_out_of_memory(exc):
        return f"out of memory ({what}); lower the sizes, frame counts or batch, or free memory"
    if isinstance(exc, OSError) and exc.errno in _OS_HINTS:
        where = f" '{exc.filename}'" if exc.filename else ""
        return f"{_OS_HINTS[exc.errno]}{where} ({what})"
    return what


def report_failure(command: str | None, argv: list[str], exc: BaseException, debug: bool) -> None:
    """One line on stderr for an unexpected ``exc``: what failed and where the traceback went
    (with ``debug``: the traceback itself, then the line)."""
    prefix = f"{_prefix(command)}: failed: {describe_failure(exc)}"
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        print(prefix, file=sys.stderr)
        return
    try:
        path = write_traceback(command, argv, exc)
    except Exception as e:  # noqa: BLE001  no writable folder (a full disk, say): the traceback goes to stderr
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        print(f"{prefix} (the traceback above could not be saved: {type(e).__name__}: {_first_line(e)})",
              file=sys.stderr)
        return
    print(f"{prefix} (full traceback: {path})", file=sys.stderr)


def _quiet_broken_pipe() -> None:
    """stdout went away (``syn2seq compare ... | head``): stop writing to it, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# --- main --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen(argv) if _chosen(argv) in COMMANDS else None
    debug = _env_debug() or "--debug" in argv
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        debug = debug or bool(getattr(args, "debug", False))
        check_options = getattr(args, "_check_options", None)
        if check_options is not None:
            check_options(args)
        return int(args._module.run(args) or 0)
    except Syn2SeqInputError as e:
        if debug:
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        print(f"{_prefix(command)}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_prefix(command)}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 1
    except Exception as e:  # noqa: BLE001  SystemExit (argparse, sys.exit in a command) passes through
        report_failure(command, argv, e, debug)
        return 1
