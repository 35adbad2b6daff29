"""``syn2seq convert-dfot IN.ckpt OUT.safetensors``: DFoT Lightning checkpoint -> syn2seq model file.

The checkpoint is read with torch's weights-only loader (no code from the file runs; a file that needs
more than tensors and plain containers is refused). The EMA weights are taken, the keys mapped onto
U-ViT3D-Pose, and the result written atomically as safetensors with its config as metadata.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("input", type=Path, help="DFoT checkpoint (.ckpt), e.g. DFoT_RE10K.ckpt")
    parser.add_argument("output", type=Path, help="model file to write (.safetensors)")
    from ..base import limits

    parser.add_argument("--size", **limits.option("model_size", "frame size the model was trained at (RE10K: 256)",
                                                  256))
    parser.add_argument("--max-frames", **limits.option("model_window", "the model's window in frames (RE10K: 8)",
                                                        8))
    parser.add_argument("--no-ema", action="store_true", help="take the training weights instead of the EMA")
    parser.add_argument("--dtype", default="keep", choices=("keep", "float32", "bfloat16", "float16"),
                        help="store the parameters in this dtype (default: as in the checkpoint)")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args) -> int:
    from ..base.errors import Syn2SeqInputError
    from ..dfot.convert import convert_dfot_checkpoint

    if args.output.exists() and not args.force:
        raise Syn2SeqInputError(str(args.output), "a path that does not exist yet", "an existing file",
                                "Pass --force to overwrite it")
    if args.output.suffix != ".safetensors":
        raise Syn2SeqInputError("output", "a file name ending in .safetensors", args.output.name)
    summary = convert_dfot_checkpoint(args.input, args.output, height=args.size, width=args.size,
                                      max_frames=args.max_frames, use_ema=not args.no_ema, dtype=args.dtype)
    c = summary["config"]
    print(f"wrote {args.output}")
    print(f"  weights:    {summary['weights']}")
    print(f"  tensors:    {summary['tensors']}, parameters: {summary['parameters'] / 1e6:.1f}M")
    print(f"  network:    U-ViT3D-Pose channels {list(c.channels)}, heads {c.num_heads}, patch {c.patch_size}, "
          f"ray channels {c.ray_channels}, {c.height}x{c.width}, window {c.max_frames} frames")
    return 0
