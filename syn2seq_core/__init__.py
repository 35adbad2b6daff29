"""Syn2Seq: exo <-> ego video generation with Syn2Seq-Forcing (arXiv 2604.13793), in pure PyTorch.

This package never imports ComfyUI; the node pack in ``nodes/`` wraps it. Submodules are imported lazily by their
users so that ``import syn2seq_core`` stays cheap. Inside the package every import is relative, so it works under
any package name (ComfyUI loads the pack folder under a name made from its path).

Map of the package, bottom to top (:data:`LAYERS`; a package imports only packages of lower layers, never one
beside or above it, and no modules import each other in a cycle: ``tests/core/test_layers.py``)

``base/``           errors (``Syn2SeqInputError``), the range of every number a user gives (``limits``), tensor
                    conventions
``geometry/``       camera maths: ``Cameras``, SLERP transitions, Plücker rays, camera paths, Wan camera
                    embeddings, Sim(3) alignment, structure from motion on frames in memory (``sfm``)
``parallel/``       torchrun / Slurm process groups, FSDP2 wrapping
``metrics/``        PSNR / SSIM / LPIPS and confidence intervals (``frames``), FVD, FID
``io/``             video decoding and writing (``video``), atomic outputs, contained paths, camera pose files of
                    every format (``poses``), structure from motion on a video file
``dfot/``           the Diffusion Forcing Transformer: DiT3D / U-ViT3D networks, noise schedules, the sampler
                    and guidance, the training objective, model files (``checkpoint``), DFoT checkpoint
                    conversion, LoRA
``interpolation/``  transition frames from a first-last-frame interpolator: Wan FLF2V, RIFE, optical flow, blend
``generation/``     the ``[source | transition | target]`` sequence (``sequence``), a loaded model and its
                    sampling (``pipeline``), Exo2Ego / Ego2Exo on a take (``takes``), image-to-video
``data/``           the take folder format (``takes``), Ego-Exo4D, the procedural world (``synthetic*``),
                    prepared training shards
``training/``       ``syn2seq train``: config, batches, checkpoints, processes, seeds, the loop, TensorBoard
``evaluation/``     ``syn2seq eval`` / ``compare``: scoring, evaluation resolution, camera accuracy, reports
``benchmarks/``     ``syn2seq bench TARGET``: one module per target
``commands/``       ``syn2seq COMMAND``: one module per command (argument parsing, progress, exit codes)
``cli``             the ``syn2seq`` entry point (``python -m syn2seq_core``)
"""

__version__ = "0.1.0"

# Bottom to top. A package may import packages of lower layers only (the test reads every import, lazy ones too).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("base",),
    ("geometry", "parallel", "metrics"),
    ("io",),
    ("dfot", "interpolation"),
    ("generation",),
    ("data",),
    ("training", "evaluation"),
    ("benchmarks",),
    ("commands",),
    ("cli",),
    ("__main__",),
)
