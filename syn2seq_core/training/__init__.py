"""``syn2seq train``: the config (:mod:`.config`), batches of training sequences (:mod:`.batches`), checkpoints
(:mod:`.checkpoints`), the processes of a run (:mod:`.parallel`), seeds (:mod:`.seeds`), the loop (:mod:`.loop`)
and its TensorBoard board (:mod:`.board`). Imports everything below it except :mod:`..evaluation`."""
