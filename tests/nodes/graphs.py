"""The shipped workflows as graphs: one definition gives ``workflows/NAME.json`` (UI format) and
``workflows/api/NAME_api.json`` (API format).

Edit here, then run ``python -m tests.nodes.make_workflows`` to rewrite the files. Node ids and input names
used here are the pack's public interface: renaming one breaks users' saved workflows.
"""

from __future__ import annotations

from .workflow_format import Link as L
from .workflow_format import Node

SAMPLE_TAKE = "(bundled) sample_take"
BUNDLED_MODEL = "bundled"

# Combo inputs whose options are files on the user's machine: their values are not checked against the
# snapshot's option lists (which depend on where the snapshot was taken).
DYNAMIC_COMBOS = {
    ("Syn2SeqLoadTake", "take"), ("Syn2SeqLoadCameras", "file"), ("Syn2SeqLoadModel", "model"), ("Syn2SeqLoadModel", "lora"),
    ("Syn2SeqEvaluate", "lpips_weights"), ("UNETLoader", "unet_name"), ("CLIPLoader", "clip_name"),
    ("VAELoader", "vae_name"), ("CLIPVisionLoader", "clip_name"), ("LoadVideo", "file"),
}


def exo2ego() -> list[Node]:
    """The workflow users open first: exo video + both camera tracks -> generated ego video (+ metrics), and a
    video of [sample | conditional mean | ground truth]."""
    return [
        Node(1, "Syn2SeqLoadModel", {"model": BUNDLED_MODEL, "weight_dtype": "auto", "lora": "none"}, pos=(40, 60), size=(300, 180)),
        Node(2, "Syn2SeqLoadTake", {"take": SAMPLE_TAKE, "width": L(1, 1), "height": L(1, 2)},
             pos=(40, 240), size=(380, 420)),
        Node(3, "Syn2SeqBuildSequence", {"exo_cameras": L(2, 2), "ego_cameras": L(2, 3), "mode": "exo2ego",
                                         "n_transition": L(1, 3), "exo_frames": L(2, 0), "source_depth": L(2, 5)},
             pos=(470, 60), size=(380, 420)),
        Node(4, "Syn2SeqSampler", {"model": L(1, 0), "sequence": L(3, 0), "steps": 25,
                                   "scheduling": "full_sequence", "history_guidance": "conditional",
                                   "guidance_scale": 1.0, "seed": 0, "stabilization": 0.0},
             pos=(900, 60), size=(330, 260)),
        Node(5, "Syn2SeqSplitSequence", {"sequence": L(4, 0)}, pos=(900, 370), size=(300, 100)),
        Node(6, "CreateVideo", {"images": L(5, 2), "fps": L(2, 4)}, pos=(1280, 60), size=(270, 80)),
        Node(7, "SaveVideo", {"video": L(6, 0), "filename_prefix": "syn2seq/exo2ego_ego"},
             pos=(1600, 60), size=(420, 380)),
        Node(8, "CreateVideo", {"images": L(4, 1), "fps": L(2, 4)}, pos=(1280, 500), size=(270, 80)),
        Node(9, "SaveVideo", {"video": L(8, 0), "filename_prefix": "syn2seq/exo2ego_sequence"},
             pos=(1600, 500), size=(420, 380)),
        Node(10, "Syn2SeqEvaluate", {"generated": L(5, 2), "ground_truth": L(2, 1), "lpips_weights": "none"},
             pos=(1280, 640), size=(300, 330)),
        # The model's conditional mean of the same sequence, and [sample | mean | ground truth] side by side.
        Node(11, "Syn2SeqConditionalMean", {"model": L(1, 0), "sequence": L(3, 0), "draws": 8, "seed": 0},
             pos=(470, 530), size=(330, 150)),
        Node(12, "Syn2SeqSplitSequence", {"sequence": L(11, 0)}, pos=(470, 730), size=(300, 100)),
        Node(13, "ImageStitch", {"image1": L(5, 2), "image2": L(12, 2), "direction": "right",
                                 "match_image_size": True, "spacing_width": 0, "spacing_color": "white"},
             pos=(900, 530), size=(300, 180)),
        Node(14, "ImageStitch", {"image1": L(13, 0), "image2": L(2, 1), "direction": "right",
                                 "match_image_size": True, "spacing_width": 0, "spacing_color": "white"},
             pos=(900, 760), size=(300, 180)),
        Node(15, "CreateVideo", {"images": L(14, 0), "fps": L(2, 4)}, pos=(1280, 1010), size=(270, 80)),
        Node(16, "SaveVideo", {"video": L(15, 0), "filename_prefix": "syn2seq/exo2ego_sample_mean_truth"},
             pos=(1600, 940), size=(620, 300)),
    ]


def ego2exo() -> list[Node]:
    """The reverse: ego video + both camera tracks -> generated exo video (+ metrics)."""
    return [
        Node(1, "Syn2SeqLoadModel", {"model": BUNDLED_MODEL, "weight_dtype": "auto", "lora": "none"}, pos=(40, 60), size=(300, 180)),
        Node(2, "Syn2SeqLoadTake", {"take": SAMPLE_TAKE, "width": L(1, 1), "height": L(1, 2)},
             pos=(40, 240), size=(380, 420)),
        Node(3, "Syn2SeqBuildSequence", {"exo_cameras": L(2, 2), "ego_cameras": L(2, 3), "mode": "ego2exo",
                                         "n_transition": L(1, 3), "ego_frames": L(2, 1), "source_depth": L(2, 6)},
             pos=(470, 60), size=(380, 420)),
        Node(4, "Syn2SeqSampler", {"model": L(1, 0), "sequence": L(3, 0), "steps": 25,
                                   "scheduling": "full_sequence", "history_guidance": "conditional",
                                   "guidance_scale": 1.0, "seed": 0, "stabilization": 0.0},
             pos=(900, 60), size=(330, 260)),
        Node(5, "Syn2SeqSplitSequence", {"sequence": L(4, 0)}, pos=(900, 370), size=(300, 100)),
        Node(6, "CreateVideo", {"images": L(5, 0), "fps": L(2, 4)}, pos=(1280, 60), size=(270, 80)),
        Node(7, "SaveVideo", {"video": L(6, 0), "filename_prefix": "syn2seq/ego2exo_exo"},
             pos=(1600, 60), size=(420, 380)),
        Node(8, "Syn2SeqEvaluate", {"generated": L(5, 0), "ground_truth": L(2, 0), "lpips_weights": "none"},
             pos=(1280, 500), size=(300, 330)),
    ]


def build_training_sequence() -> list[Node]:
    """Training data: exo clip + WFLF transition (optical flow here) + ego clip -> one sequence video."""
    return [
        Node(1, "Syn2SeqLoadTake", {"take": SAMPLE_TAKE}, pos=(40, 60), size=(380, 420)),
        Node(2, "Syn2SeqInterpolate", {"first": L(1, 0), "last": L(1, 1), "n": 8, "backend": "flow"},
             pos=(470, 60), size=(320, 130)),
        Node(3, "Syn2SeqBuildSequence", {"exo_cameras": L(1, 2), "ego_cameras": L(1, 3), "mode": "exo2ego",
                                         "n_transition": 8, "exo_frames": L(1, 0), "ego_frames": L(1, 1),
                                         "transition_frames": L(2, 0)},
             pos=(840, 60), size=(380, 420)),
        Node(4, "CreateVideo", {"images": L(3, 1), "fps": L(1, 4)}, pos=(1270, 60), size=(270, 80)),
        Node(5, "SaveVideo", {"video": L(4, 0), "filename_prefix": "syn2seq/training_sequence"},
             pos=(1590, 60), size=(420, 380)),
        Node(6, "PreviewImage", {"images": L(2, 0)}, pos=(470, 240), size=(320, 260)),
    ]


WAN_NOTE = """## Wan 2.1 first-last-frame (FLF2V) as the transition interpolator

This workflow needs the Wan 2.1 FLF2V weights (a GPU with about 24 GB for the 14B model; not runnable on CPU).
Put these files into ComfyUI's models folders (names as in ComfyUI's own Wan FLF2V template):

- `models/diffusion_models/wan2.1_flf2v_720p_14B_fp16.safetensors`
- `models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`
- `models/vae/wan_2.1_vae.safetensors`
- `models/clip_vision/clip_vision_h.safetensors`

The last exo frame is the start image and the first ego frame the end image. Wan makes `length` = 4k+1 frames;
**Syn2Seq Wan Frames To Transition** drops the two endpoints and resamples the rest to `n` transition
frames. Keep the take's width/height equal to Wan's width/height (multiples of 16).
"""


def wflf_wan_flf2v() -> list[Node]:
    """WFLF with ComfyUI's native Wan FLF2V nodes (needs Wan weights; validated but never run in tests)."""
    size = 480
    return [
        Node(1, "Syn2SeqLoadTake", {"take": SAMPLE_TAKE, "width": size, "height": size},
             pos=(40, 60), size=(380, 420)),
        Node(2, "ImageFromBatch", {"image": L(1, 0), "batch_index": 4095, "length": 1},
             pos=(470, 60), size=(270, 100), title="last exo frame"),
        Node(3, "ImageFromBatch", {"image": L(1, 1), "batch_index": 0, "length": 1},
             pos=(470, 200), size=(270, 100), title="first ego frame"),
        Node(4, "UNETLoader", {"unet_name": "wan2.1_flf2v_720p_14B_fp16.safetensors", "weight_dtype": "default"},
             pos=(40, 540), size=(380, 90)),
        Node(5, "CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan",
                               "device": "default"}, pos=(40, 680), size=(380, 110)),
        Node(6, "VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(40, 840), size=(380, 60)),
        Node(7, "CLIPVisionLoader", {"clip_name": "clip_vision_h.safetensors"}, pos=(40, 950), size=(380, 60)),
        Node(8, "CLIPVisionEncode", {"clip_vision": L(7, 0), "image": L(2, 0), "crop": "none"},
             pos=(470, 340), size=(270, 80)),
        Node(9, "CLIPVisionEncode", {"clip_vision": L(7, 0), "image": L(3, 0), "crop": "none"},
             pos=(470, 460), size=(270, 80)),
        Node(10, "CLIPTextEncode", {"clip": L(5, 0), "text": "a smooth continuous camera move from a third-person "
                                    "view of a person into their own first-person view, same scene, same moment"},
             pos=(470, 580), size=(400, 160), title="positive prompt"),
        Node(11, "CLIPTextEncode", {"clip": L(5, 0), "text": "jump cut, scene change, static, blurry, distorted, "
                                    "low quality"}, pos=(470, 780), size=(400, 160), title="negative prompt"),
        Node(12, "ModelSamplingSD3", {"model": L(4, 0), "shift": 8.0}, pos=(920, 540), size=(270, 60)),
        Node(13, "WanFirstLastFrameToVideo", {"positive": L(10, 0), "negative": L(11, 0), "vae": L(6, 0),
                                              "width": size, "height": size, "length": 33, "batch_size": 1,
                                              "clip_vision_start_image": L(8, 0), "clip_vision_end_image": L(9, 0),
                                              "start_image": L(2, 0), "end_image": L(3, 0)},
             pos=(920, 60), size=(340, 330)),
        Node(14, "KSampler", {"model": L(12, 0), "positive": L(13, 0), "negative": L(13, 1),
                              "latent_image": L(13, 2), "seed": 0, "steps": 20, "cfg": 3.0,
                              "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0},
             pos=(1310, 60), size=(320, 470)),
        Node(15, "VAEDecode", {"samples": L(14, 0), "vae": L(6, 0)}, pos=(1680, 60), size=(210, 50)),
        Node(16, "Syn2SeqWanFramesToTransition", {"wan_frames": L(15, 0), "n": 8}, pos=(1680, 160), size=(320, 80)),
        Node(17, "Syn2SeqBuildSequence", {"exo_cameras": L(1, 2), "ego_cameras": L(1, 3), "mode": "exo2ego",
                                          "n_transition": 8, "exo_frames": L(1, 0), "ego_frames": L(1, 1),
                                          "transition_frames": L(16, 0)},
             pos=(2050, 60), size=(380, 420)),
        Node(18, "CreateVideo", {"images": L(17, 1), "fps": L(1, 4)}, pos=(2480, 60), size=(270, 80)),
        Node(19, "SaveVideo", {"video": L(18, 0), "filename_prefix": "syn2seq/wflf_wan_sequence"},
             pos=(2800, 60), size=(420, 380)),
        Node(20, "MarkdownNote", pos=(920, 640), size=(520, 380), title="Read me", text=WAN_NOTE),
    ]


WAN_FUN_CAMERA_NOTE = """## Baseline: Wan-Fun Control-Camera driven by the take's cameras (the paper's Wan-FCtrl)

This workflow needs the Wan 2.1 Fun Control-Camera weights and a GPU (the 1.3B model needs far less memory
than the 14B one; not runnable on CPU). Put these files into ComfyUI's models folders (names as in
ComfyUI's own "Wan2.1 Fun Camera" templates, from Comfy-Org/Wan_2.1_ComfyUI_repackaged):

- `models/diffusion_models/wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors`
  (or `wan2.1_fun_camera_v1.1_14B_bf16.safetensors`: pick it in the UNET loader)
- `models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`
- `models/vae/wan_2.1_vae.safetensors`
- `models/clip_vision/clip_vision_h.safetensors`

The last exo frame is the start image. **Syn2Seq Wan Camera Embedding** puts the last exo camera first and the
ego cameras after it, every pose relative to that exo camera, so Wan moves the view from exo to ego (the
same tensor layout as ComfyUI's WanCameraEmbedding). Wan makes `length` = 4k+1 frames: with length 0 the
node makes one frame per camera (1 + the ego frames: read a multiple of 4 ego frames), otherwise it
resamples the camera track to `length`. The first generated frame is the start image; the rest are the
ego prediction, saved and compared with the ground-truth ego frames (the counts match with length 0).
"""


def baseline_wan_fun_camera() -> list[Node]:
    """exo2ego with Wan-Fun Control-Camera from the take's cameras (needs Wan weights; validated, never run)."""
    size = 480
    return [
        Node(1, "Syn2SeqLoadTake", {"take": SAMPLE_TAKE, "width": size, "height": size},
             pos=(40, 60), size=(380, 420)),
        Node(2, "ImageFromBatch", {"image": L(1, 0), "batch_index": 4095, "length": 1},
             pos=(470, 60), size=(270, 100), title="last exo frame (start image)"),
        Node(3, "Syn2SeqWanCameraEmbedding", {"cameras": L(1, 3), "start_cameras": L(1, 2), "width": size,
                                              "height": size, "length": 0},
             pos=(470, 200), size=(340, 200)),
        Node(4, "UNETLoader", {"unet_name": "wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors",
                               "weight_dtype": "default"}, pos=(40, 540), size=(380, 90)),
        Node(5, "CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan",
                               "device": "default"}, pos=(40, 680), size=(380, 110)),
        Node(6, "VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(40, 840), size=(380, 60)),
        Node(7, "CLIPVisionLoader", {"clip_name": "clip_vision_h.safetensors"}, pos=(40, 950), size=(380, 60)),
        Node(8, "CLIPVisionEncode", {"clip_vision": L(7, 0), "image": L(2, 0), "crop": "none"},
             pos=(470, 450), size=(270, 80)),
        Node(9, "CLIPTextEncode", {"clip": L(5, 0), "text": "the same scene seen from the person's own eyes, a "
                                   "first-person view with their hands in front, continuous camera move"},
             pos=(470, 580), size=(400, 160), title="positive prompt"),
        Node(10, "CLIPTextEncode", {"clip": L(5, 0), "text": "jump cut, scene change, static, blurry, distorted, "
                                    "low quality"}, pos=(470, 780), size=(400, 160), title="negative prompt"),
        Node(11, "ModelSamplingSD3", {"model": L(4, 0), "shift": 8.0}, pos=(920, 540), size=(270, 60)),
        Node(12, "WanCameraImageToVideo", {"positive": L(9, 0), "negative": L(10, 0), "vae": L(6, 0),
                                           "width": L(3, 1), "height": L(3, 2), "length": L(3, 3),
                                           "batch_size": 1, "clip_vision_output": L(8, 0),
                                           "start_image": L(2, 0), "camera_conditions": L(3, 0)},
             pos=(920, 60), size=(340, 300)),
        Node(13, "KSampler", {"model": L(11, 0), "positive": L(12, 0), "negative": L(12, 1),
                              "latent_image": L(12, 2), "seed": 0, "steps": 20, "cfg": 6.0,
                              "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0},
             pos=(1310, 60), size=(320, 470)),
        Node(14, "VAEDecode", {"samples": L(13, 0), "vae": L(6, 0)}, pos=(1680, 60), size=(210, 50)),
        Node(15, "ImageFromBatch", {"image": L(14, 0), "batch_index": 1, "length": 4096},
             pos=(1680, 160), size=(270, 100), title="generated ego frames (start image dropped)"),
        Node(16, "CreateVideo", {"images": L(15, 0), "fps": L(1, 4)}, pos=(2000, 60), size=(270, 80)),
        Node(17, "SaveVideo", {"video": L(16, 0), "filename_prefix": "syn2seq/baseline_wan_fun_camera_ego"},
             pos=(2320, 60), size=(420, 380)),
        Node(18, "Syn2SeqEvaluate", {"generated": L(15, 0), "ground_truth": L(1, 1), "lpips_weights": "none"},
             pos=(2000, 500), size=(300, 330)),
        Node(19, "MarkdownNote", pos=(920, 640), size=(520, 420), title="Read me", text=WAN_FUN_CAMERA_NOTE),
    ]


DFOT_I2V_NOTE = """## Image to video along a camera path (DFoT's own task)

As shipped it runs on the CPU with the small bundled model (trained on procedural exo/ego scenes, so the
video only shows the mechanics). For DFoT's RealEstate10K model, run `syn2seq download dfot-re10k` (or
convert `DFoT_RE10K.ckpt` with `syn2seq convert-dfot`), put the `.safetensors` into `models/syn2seq/` and pick
it in the loader: it samples on DFoT's reference grid (50 steps) and sees cameras in its training convention.
The first exo frame of the sample take is the image; **Syn2Seq Camera Path** makes the track (orbit, dolly,
pan, tilt, walk, look-at or keyframes) at the model's size. mode `keyframes` generates keyframes spread over
the track first, then the frames between them (less drift on long tracks); `stabilization` 0.02 is DFoT's
stabilized guidance for long rollouts.
"""


def image_to_video(node_id: int, *, model, images, cameras, pos) -> Node:
    """Syn2Seq Image To Video with the shipped settings (keyframes from the first image, 50 steps)."""
    return Node(node_id, "Syn2SeqImageToVideo", {"model": model, "images": images, "cameras": cameras,
                                                 "image_frames": "0", "mode": "keyframes", "keyframe_density": 0.25,
                                                 "steps": 50, "scheduling": "full_sequence",
                                                 "history_guidance": "conditional", "guidance_scale": 1.0,
                                                 "stabilization": 0.0, "seed": 0},
                pos=pos, size=(340, 420))


def dfot_image_to_video() -> list[Node]:
    """One image + a built camera path -> a video, with any DFoT-family model (bundled one by default)."""
    return [
        Node(1, "Syn2SeqLoadModel", {"model": BUNDLED_MODEL, "weight_dtype": "auto", "lora": "none"}, pos=(40, 60), size=(300, 180)),
        Node(2, "Syn2SeqLoadTake", {"take": SAMPLE_TAKE, "width": L(1, 1), "height": L(1, 2)},
             pos=(40, 260), size=(380, 420)),
        Node(3, "ImageFromBatch", {"image": L(2, 0), "batch_index": 0, "length": 1},
             pos=(470, 60), size=(270, 100), title="the image"),
        Node(4, "Syn2SeqCameraPath", {"preset": "orbit", "frames": 17, "fps": 8.0, "width": L(1, 1),
                                      "height": L(1, 2), "fov_deg": 60.0, "position_x": 0.0, "position_y": -4.0,
                                      "position_z": 1.6, "target_x": 0.0, "target_y": 0.0, "target_z": 1.0,
                                      "angle_deg": 60.0, "distance": 2.0, "speed": 1.4,
                                      "keyframes": "[]"},
             pos=(470, 220), size=(360, 620)),
        image_to_video(5, model=L(1, 0), images=L(3, 0), cameras=L(4, 0), pos=(880, 60)),
        Node(6, "CreateVideo", {"images": L(5, 0), "fps": L(4, 2)}, pos=(1270, 60), size=(270, 80)),
        Node(7, "SaveVideo", {"video": L(6, 0), "filename_prefix": "syn2seq/dfot_image_to_video"},
             pos=(1590, 60), size=(420, 380)),
        Node(8, "MarkdownNote", pos=(880, 540), size=(520, 360), title="Read me", text=DFOT_I2V_NOTE),
    ]


ESTIMATE_NOTE = """## Your own video: cameras from its pixels, then a video along them

**Load Video** reads a clip from ComfyUI's input folder (upload yours; the example is a real 55-frame shot).
**Syn2Seq Estimate Cameras** finds a camera for every frame by structure from motion (COLMAP's global mapper
through pycolmap: `pip install pycolmap` into ComfyUI's Python; without it only short clips are estimated, with
OpenCV). Its widget draws the track; `report` says how many frames registered and what was guessed. The scale is
arbitrary. Set `static` for a tripod shot (one pose) and `fov_deg` if you know the lens.

The estimated track then drives **Syn2Seq Image To Video** from the clip's first frame (as shipped, the small
bundled model, trained on procedural scenes, so the result only shows the mechanics), and the same cameras can feed
**Syn2Seq Build Sequence** as the exo or ego track of exo2ego / ego2exo.
"""


def estimate_cameras() -> list[Node]:
    """A video -> its estimated camera track (drawn by the node's widget) -> image2video along that track."""
    return [
        Node(1, "LoadVideo", {"file": "bikes_wall_55f_320x136.mp4"}, pos=(40, 60), size=(320, 380)),
        Node(2, "GetVideoComponents", {"video": L(1, 0)}, pos=(40, 490), size=(270, 90)),
        Node(3, "Syn2SeqEstimateCameras", {"images": L(2, 0), "mapper": "global", "static": False, "fov_deg": 0.0,
                                           "lens": "pinhole", "stride": 1, "max_frames": 0, "sfm_size": 640,
                                           "min_registered": 0.5, "time_limit_s": 0.0, "seed": 0},
             pos=(400, 60), size=(420, 640)),
        Node(4, "PreviewAny", {"source": L(3, 2)}, pos=(400, 750), size=(420, 260), title="estimate report"),
        Node(5, "Syn2SeqLoadModel", {"model": BUNDLED_MODEL, "weight_dtype": "auto", "lora": "none"},
             pos=(870, 60), size=(300, 180)),
        Node(6, "ImageFromBatch", {"image": L(2, 0), "batch_index": 0, "length": 1},
             pos=(870, 290), size=(270, 100), title="first frame"),
        image_to_video(7, model=L(5, 0), images=L(6, 0), cameras=L(3, 0), pos=(1220, 60)),
        Node(8, "CreateVideo", {"images": L(7, 0), "fps": L(2, 2)}, pos=(1610, 60), size=(270, 80)),
        Node(9, "SaveVideo", {"video": L(8, 0), "filename_prefix": "syn2seq/estimated_cameras_image2video"},
             pos=(1930, 60), size=(420, 380)),
        Node(10, "MarkdownNote", pos=(870, 540), size=(520, 420), title="Read me", text=ESTIMATE_NOTE),
    ]


WORKFLOWS = {
    "exo2ego": exo2ego,
    "ego2exo": ego2exo,
    "build_training_sequence": build_training_sequence,
    "wflf_wan_flf2v": wflf_wan_flf2v,
    "baseline_wan_fun_camera": baseline_wan_fun_camera,
    "dfot_image_to_video": dfot_image_to_video,
    "estimate_cameras": estimate_cameras,
}
# Workflows the server tests run end to end on CPU, and the files each must produce (SaveVideo prefixes).
RUNNABLE = {
    "exo2ego": ["syn2seq/exo2ego_ego", "syn2seq/exo2ego_sequence"],
    "ego2exo": ["syn2seq/ego2exo_exo"],
    "build_training_sequence": ["syn2seq/training_sequence"],
    "dfot_image_to_video": ["syn2seq/dfot_image_to_video"],
}
