"""The pack's own socket types. Each carries one core object between nodes, never a dict:

SYN2SEQ_CAMERAS   syn2seq_core.geometry.Cameras (c2w [N, 4, 4] OpenCV, K [N, 4] normalised, size)
SYN2SEQ_SEQUENCE  syn2seq_core.generation.sequence.Syn2SeqSequence ([source | transition | target] frames + cameras)
SYN2SEQ_MODEL     the DFoT model returned by syn2seq_core.generation.pipeline.load_model
SYN2SEQ_RAYS      Plücker rays, a tensor [N, H, W, 6] (order as chosen on the rays node)
SYN2SEQ_DEPTH     z-depth of a view's frames, a float32 tensor [N, h, w] in metres (None: the take has none)
Frames travel as ComfyUI's own IMAGE batches.
"""

from comfy_api.latest import io

Cameras = io.Custom("SYN2SEQ_CAMERAS")
Sequence = io.Custom("SYN2SEQ_SEQUENCE")
Model = io.Custom("SYN2SEQ_MODEL")
Rays = io.Custom("SYN2SEQ_RAYS")
Depth = io.Custom("SYN2SEQ_DEPTH")

CATEGORY = "Syn2Seq"
