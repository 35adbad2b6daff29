"""Syn2Seq: exo <-> ego video generation with Syn2Seq-Forcing (arXiv 2604.13793), in pure PyTorch.

This package never imports ComfyUI; the node pack in ``nodes/`` wraps it. Submodules are imported
lazily by their users so that ``import syn2seq_core`` stays cheap.
"""

__version__ = "0.1.0"
