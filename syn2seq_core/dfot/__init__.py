"""DFoT, the Diffusion Forcing Transformer: the DiT3D and U-ViT3D networks (:mod:`.model`, :mod:`.uvit3d`), noise
schedules, the per-frame-noise sampler and guidance, the training objective, model files (:mod:`.checkpoint`),
DFoT checkpoint conversion and LoRA. Imports :mod:`..base`, :mod:`..geometry` (Plücker rays) and :mod:`..io`
(atomic model files)."""
