"""The ``syn2seq`` command (also ``python -m syn2seq_core``).

Each subcommand lives in a module of ``syn2seq_core/commands/`` that defines ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs,
so ``syn2seq --help`` is fast and one broken command cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import Syn2SeqInputError

# command name -> (module under syn2seq_core.commands, one-line help). exo2ego and ego2exo share a
# module; it reads ``args.command`` for the direction.
COMMANDS = {
    "demo": ("demo", "exo2ego on the bundled sample take with the bundled model"),
    "selfcheck": ("selfcheck", "check the installation and the camera/sequence pipeline"),
    "exo2ego": ("generate", "generate the ego video of a take from its exo video and both camera tracks"),
    "ego2exo": ("generate", "generate the exo video of a take from its ego video and both camera tracks"),
    "interpolate": ("interpolate", "first-last-frame interpolation between two images, or inside a video"),
    "render-synthetic": ("render_synthetic", "render procedural exo/ego takes with exact cameras"),
    "train": ("train", "train or finetune a DFoT model from a config file"),
    "eval": ("evaluate", "evaluate a model on a folder of takes (PSNR/SSIM/LPIPS on generated frames)"),
    "compare": ("compare", "paired per-take differences between eval reports (ablations)"),
    "bench": ("bench", "speed and memory benchmarks (io, sampler, interpolation, render)"),
    "convert-dfot": ("convert_dfot", "convert a DFoT Lightning checkpoint to safetensors"),
    "download": ("download", "download published weights (needs internet; explicit only)"),
}


def _load(name: str):
    return importlib.import_module(f"syn2seq_core.commands.{COMMANDS[name][0]}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syn2seq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported; the others are listed by name.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        if name == chosen:
            module = _load(name)
            p = sub.add_parser(name, help=help_text, description=help_text)
            module.add_arguments(p)
            p.set_defaults(_module=module)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except Syn2SeqInputError as e:
        print(f"syn2seq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"syn2seq {args.command}: interrupted", file=sys.stderr)
        return 130
