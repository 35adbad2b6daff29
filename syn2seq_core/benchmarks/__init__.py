"""Benchmark targets of ``syn2seq bench``: one module each, with ``add_arguments`` and ``run``. Above the library
(training, evaluation and everything below); only :mod:`..commands` imports them."""
