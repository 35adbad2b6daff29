"""DFoT: diffusion-forcing video transformers (networks, noise schedule, sampler, checkpoints)."""
