"""Benchmark targets of ``syn2seq bench``: one module each, with ``add_arguments`` and ``run``."""
