"""Numbers on frames and videos: PSNR / SSIM / LPIPS and confidence intervals (:mod:`.frames`), FVD (:mod:`.fvd`)
and FID (:mod:`.fid`). Imports only :mod:`..base`, so generation, training and evaluation can all use it."""
