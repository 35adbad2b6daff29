"""Data: takes (synchronised exo/ego videos with camera tracks), readers for public datasets, synthetic scenes,
prepared training shards.

``takes`` defines the take folder format and :class:`~syn2seq_core.data.takes.Take`; ``egoexo4d`` and
``egoexo4d_index`` read an Ego-Exo4D release into the same structure; ``synthetic*`` is the procedural world;
``shards`` writes and reads the training triplets of ``syn2seq prepare``. Imports :mod:`..generation` (the
sequence a triplet becomes), :mod:`..interpolation` (its transition frames) and the layers below; never
training or evaluation. Submodules are imported by their users (nothing here imports torch or PyAV), so
``import syn2seq_core.data`` stays cheap.
"""
