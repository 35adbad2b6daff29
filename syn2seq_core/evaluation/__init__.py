"""``syn2seq eval`` and ``compare``: scoring takes against baselines (:mod:`.run`), camera accuracy
(:mod:`.cameras`), many takes per network call (:mod:`.batching`) and the written reports (:mod:`.reports`).
Imports everything below it except :mod:`..training`."""
