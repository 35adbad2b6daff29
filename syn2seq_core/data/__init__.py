"""Data: takes (synchronised exo/ego videos with camera tracks), readers for public datasets, synthetic scenes.

``takes`` defines the take folder format and :class:`~syn2seq_core.data.takes.Take`; ``egoexo4d`` reads
Ego-Exo4D take folders into the same structure. Submodules are imported by their users (nothing here
imports torch or PyAV), so ``import syn2seq_core.data`` stays cheap.
"""
