"""One module per ``syn2seq`` command (:mod:`syn2seq_core.cli` lists them), each with ``add_arguments(parser)`` and
``run(args) -> int``: argument parsing, progress and exit codes over the library below. The top of the package:
any package may be imported from here, nothing imports a command except the CLI and other commands."""
