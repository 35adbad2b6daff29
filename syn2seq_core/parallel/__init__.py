"""Many processes: the torchrun / Slurm process group (:mod:`.distributed`) and FSDP2 wrapping (:mod:`.fsdp`).
Imports only :mod:`..base`."""
