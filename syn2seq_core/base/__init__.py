"""The floor every other package stands on: errors (:mod:`.errors`), the ranges of every number a user gives
(:mod:`.limits`) and the tensor conventions (:mod:`.conventions`). Imports nothing else of the pack."""
