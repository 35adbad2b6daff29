"""Checks of the node code inside a real ComfyUI process (no server), run with ComfyUI's own Python:

    $COMFYUI_PATH/.venv/bin/python tests/nodes/inprocess_checks.py COMFYUI_PATH WORK_DIR

Imports ComfyUI's ``folder_paths`` / ``comfy`` / ``comfy_api`` and this pack exactly as ComfyUI does (the pack
folder as a package), calls node helpers and ``execute`` directly, and prints one JSON object
``{check_name: {"ok": bool, "detail": str}}``. ``test_comfyui_inprocess.py`` runs it and asserts each check.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

PACK = Path(__file__).resolve().parents[2]
CHECKS = {}
LOAD = {}  # how loading the pack went (filled by setup)


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def comfy_environment(comfy: str, work: Path) -> None:
    """This process as ComfyUI's main.py sets it up: ComfyUI first on sys.path (this folder off it), its folder as
    the working directory, CPU only, ``work/input`` as the input folder (``work/models`` made too)."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != here]  # tests/nodes is not a root
    sys.path.insert(0, comfy)
    os.chdir(comfy)
    from comfy.cli_args import args

    args.cpu = True  # before comfy.model_management is imported: no CUDA probing
    import folder_paths

    (work / "input").mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(parents=True, exist_ok=True)
    folder_paths.set_input_directory(str(work / "input"))


def setup(comfy: str, work: Path):
    comfy_environment(comfy, work)
    # What ComfyUI has imported before it loads custom nodes, so the timing below is the pack's own cost.
    import asyncio
    import time

    import comfy.model_management
    import comfy_api.latest  # noqa: F401
    import kornia  # noqa: F401  (comfy_extras imports it at start-up)

    before = set(sys.modules)
    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("syn2seq_pack", PACK / "__init__.py",
                                                  submodule_search_locations=[str(PACK)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["syn2seq_pack"] = module
    spec.loader.exec_module(module)
    t1 = time.perf_counter()
    extension = asyncio.run(module.comfy_entrypoint())  # what nodes.load_custom_node does
    node_list = asyncio.run(extension.get_node_list())
    for node in node_list:
        node.GET_SCHEMA()
    t2 = time.perf_counter()
    LOAD.update(module_ms=(t1 - t0) * 1e3, entrypoint_ms=(t2 - t1) * 1e3, nodes=len(node_list),
                new_modules=sorted(set(sys.modules) - before))


def raises(fn, *args) -> str | None:
    """The message of the Syn2SeqInputError ``fn(*args)`` raises, or None if it does not raise one."""
    try:
        fn(*args)
    except ValueError as e:
        return str(e)
    return None


def _cameras(n: int, x0: float = 0.0, width: int = 64, height: int = 48):
    import torch
    from syn2seq_pack.syn2seq_core.geometry.cameras import Cameras, look_at

    eye = torch.stack([torch.tensor([x0 + i * 0.1, -2.0, 1.5]) for i in range(n)]).double()
    return Cameras(look_at(eye, torch.zeros(n, 3).double()), torch.tensor([0.8, 0.8, 0.5, 0.5]), width, height)


@check
def pack_loads_through_its_entrypoint(work: Path):
    """The pack loads its own core relatively (``syn2seq_pack.syn2seq_core.*``, never the absolute
    ``syn2seq_core``); the entrypoint and schemas load only the core's registries."""
    own = "syn2seq_pack.syn2seq_core"
    core = [m.removeprefix(own + ".") for m in LOAD["new_modules"] if m.startswith(own + ".")]
    absolute = [m for m in LOAD["new_modules"] if m.split(".")[0] == "syn2seq_core"]
    other = [m for m in LOAD["new_modules"] if m.split(".")[0] not in ("syn2seq_pack", "syn2seq_core")]
    detail = (f"module {LOAD['module_ms']:.1f} ms, entrypoint + {LOAD['nodes']} schemas "
              f"{LOAD['entrypoint_ms']:.0f} ms; core modules loaded by the schemas: {core}; "
              f"other new modules: {other}; absolute syn2seq_core modules: {absolute}")
    return LOAD["nodes"] == 17 and not absolute, detail


@check
def paths_stay_inside_the_input_folder(work: Path):
    from syn2seq_pack.nodes import paths

    inp = work / "input"
    take = inp / "takes" / "t1"
    take.mkdir(parents=True, exist_ok=True)
    (take / "exo.mp4").write_bytes(b"")
    outside = work / "outside_take"
    outside.mkdir(exist_ok=True)
    (outside / "exo.mp4").write_bytes(b"")
    link = inp / "escape"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    listed = paths.list_takes()
    problems = []
    if "takes/t1" not in listed:
        problems.append(f"takes/t1 not listed: {listed}")
    if "escape" in listed:
        problems.append("a symlink out of the input folder is listed")
    if paths.resolve_take("takes/t1") != take.resolve():
        problems.append("takes/t1 does not resolve to its folder")
    for bad in ("../outside_take", "escape", str(outside), "takes/../../outside_take", ""):
        msg = raises(paths.resolve_take, bad)
        if msg is None:
            problems.append(f"{bad!r} was accepted")
        elif "expected" not in msg:
            problems.append(f"{bad!r}: unclear message {msg!r}")
    return not problems, "; ".join(problems) or f"listed {listed}"


@check
def model_folder_is_registered_for_safetensors_only(work: Path):
    import folder_paths

    paths_, exts = folder_paths.folder_names_and_paths["syn2seq"]
    ok = any(p.endswith(os.path.join("models", "syn2seq")) for p in paths_) and exts == {".safetensors"}
    return ok, f"paths {paths_}, extensions {exts}"


@check
def image_batches_convert_both_ways(work: Path):
    import torch
    from syn2seq_pack.nodes import convert

    rgba = torch.rand(5, 6, 7, 4)
    frames = convert.image_to_frames(rgba, "x")
    back = convert.frames_to_image(frames)
    ok = (tuple(frames.shape) == (5, 3, 6, 7) and torch.equal(back, rgba[..., :3])
          and convert.optional_frames(torch.zeros(0, 6, 7, 3), "x") is None
          and convert.optional_frames(None, "x") is None
          and raises(convert.image_to_frames, torch.rand(6, 7), "x") is not None)
    return ok, f"frames {tuple(frames.shape)}, back {tuple(back.shape)}"


@check
def cameras_fit_frames_like_the_video_reader(work: Path):
    import torch
    from syn2seq_pack.nodes import convert

    cams = _cameras(1)  # a static 64x48 camera
    fitted = convert.fit_cameras_to_frames(cams, torch.zeros(4, 3, 24, 32))  # same aspect, half size
    cropped = convert.fit_cameras_to_frames(cams, torch.zeros(4, 3, 32, 32))  # centre-cropped square
    wrong = raises(convert.fit_cameras_to_frames, _cameras(3), torch.zeros(4, 3, 24, 32))
    ok = (len(fitted) == 4 and fitted.size == (32, 24) and torch.allclose(fitted.K[0], cams.K[0])
          and cropped.size == (32, 32) and abs(float(cropped.K[0, 0]) - 0.8 * round(64 * 32 / 48) / 32) < 1e-6
          and wrong is not None)
    return ok, f"fitted K {fitted.K[0].tolist()}, cropped K {cropped.K[0].tolist()}, count error: {wrong}"


@check
def transition_node_returns_slerp_cameras_and_a_path(work: Path):
    from syn2seq_pack.nodes.cameras import Syn2SeqTransitionPoses

    out = Syn2SeqTransitionPoses.execute(_cameras(3), _cameras(2, x0=2.0), 5)
    cams = out.result[0]
    payload = out.ui["syn2seq_camera_path"][0]
    roles = [s["role"] for s in payload["segments"]]
    counts = [s["count"] for s in payload["segments"]]
    ok = len(cams) == 5 and roles == ["source", "transition", "target"] and counts == [3, 5, 2]
    return ok, f"roles {roles}, counts {counts}"


@check
def plucker_preview_shows_unit_directions(work: Path):
    import torch
    from syn2seq_pack.nodes.cameras import Syn2SeqPluckerRays

    out = Syn2SeqPluckerRays.execute(_cameras(2), 16, 12, "dm", True)
    rays, preview = out.result
    d = rays[..., :3].float()
    ok = (tuple(rays.shape) == (2, 12, 16, 6) and tuple(preview.shape) == (2, 12, 16, 3)
          and torch.allclose(d.norm(dim=-1), torch.ones(2, 12, 16), atol=1e-5)
          and torch.allclose(preview, d * 0.5 + 0.5))
    return ok, f"rays {tuple(rays.shape)}, preview range [{float(preview.min()):.3f}, {float(preview.max()):.3f}]"


@check
def build_and_split_sequence_round_trip(work: Path):
    import torch
    from syn2seq_pack.nodes.sequence import Syn2SeqBuildSequence, Syn2SeqSplitSequence

    exo = torch.rand(3, 48, 64, 3)
    ego = torch.rand(2, 48, 64, 3)
    built = Syn2SeqBuildSequence.execute(_cameras(3), _cameras(2, x0=2.0), "exo2ego", 4, exo_frames=exo,
                                         ego_frames=ego)
    seq, frames = built.result
    e, t, g = Syn2SeqSplitSequence.execute(seq).result
    video_only = Syn2SeqBuildSequence.execute(_cameras(3), _cameras(2, x0=2.0), "video_only", 4, exo_frames=exo)
    vo_roles = [s["role"] for s in video_only.ui["syn2seq_camera_path"][0]["segments"]]
    ok = (len(seq) == 9 and tuple(frames.shape) == (9, 48, 64, 3) and torch.allclose(e, exo, atol=1e-6)
          and t.shape[0] == 4 and float(t.abs().max()) == 0.0 and torch.allclose(g, ego, atol=1e-6)
          and vo_roles == ["exo", "ego"])
    return ok, f"sequence {len(seq)} frames; split {e.shape[0]}/{t.shape[0]}/{g.shape[0]}; video_only path {vo_roles}"


@check
def sampler_callback_cancels_on_interrupt(work: Path):
    import comfy.model_management as mm
    from syn2seq_pack.nodes import progress

    callback = progress.step_callback(10)
    callback({"step": 1, "total": 10})
    mm.interrupt_current_processing(True)
    try:
        callback({"step": 2, "total": 10})
        raised = None
    except mm.InterruptProcessingException as e:
        raised = type(e).__name__
    finally:
        mm.interrupt_current_processing(False)
    return raised == "InterruptProcessingException", f"raised {raised}"


@check
def conditional_mean_node_keeps_the_context_and_refuses_long_sequences(work: Path):
    import torch
    from syn2seq_pack.nodes import paths
    from syn2seq_pack.nodes.model import Syn2SeqConditionalMean, Syn2SeqLoadModel
    from syn2seq_pack.syn2seq_core.generation.sequence import build_sequence

    model, width, height, n_tr = Syn2SeqLoadModel.execute(paths.BUNDLED_MODEL).result

    def cams(n, x0):
        return _cameras(n, x0, width, height)

    exo = torch.rand(4, 3, height, width)
    seq = build_sequence(cams(4, 0.0), cams(4, 2.0), exo_frames=exo, n_transition=n_tr)
    seq = seq.with_depth_cue(_flat_depth(4, width, height))  # the bundled model reads the exo depth
    out, frames = Syn2SeqConditionalMean.execute(model, seq, 2, 0).result
    again = Syn2SeqConditionalMean.execute(model, seq, 2, 0).result[0]
    generated = seq.context_mask == 0
    long = build_sequence(cams(8, 0.0), cams(8, 2.0), exo_frames=torch.rand(8, 3, height, width), n_transition=n_tr)
    error = raises(Syn2SeqConditionalMean.execute, model, long, 2, 0)
    ok = (torch.equal(out.frames[:4], exo) and torch.equal(out.frames, again.frames)
          and not torch.equal(out.frames[generated], seq.frames[generated])
          and tuple(frames.shape) == (len(seq), height, width, 3)
          and error is not None and "window" in error)
    return ok, f"{len(seq)} frames, {int(generated.sum())} generated; long sequence: {error}"


@check
def depth_from_image_feeds_build_sequence_the_depth_of_an_estimate(work: Path):
    """An estimator's inverse-depth IMAGE batch -> Syn2Seq Depth From Image -> Build Sequence's source_depth:
    the cue of the true depth (the median put at the true one), as from the depth itself."""
    import torch
    from syn2seq_pack.nodes.sequence import Syn2SeqBuildSequence, Syn2SeqDepthFromImage

    width = height = 32
    true = torch.linspace(2.0, 5.0, width).expand(4, height, width).contiguous()  # a slanted wall
    disparity = 1.0 / true
    image = (disparity / disparity.max())[..., None].expand(-1, -1, -1, 3)
    depth = Syn2SeqDepthFromImage.execute(image, "inverse", float(true.median())).result[0]
    cams = (_cameras(4, 0.0, width, height), _cameras(4, 0.4, width, height))
    exo = torch.rand(4, height, width, 3)
    seq = Syn2SeqBuildSequence.execute(*cams, "exo2ego", 2, exo_frames=exo, source_depth=depth).result[0]
    want = Syn2SeqBuildSequence.execute(*cams, "exo2ego", 2, exo_frames=exo, source_depth=true).result[0]
    error = raises(Syn2SeqDepthFromImage.execute, torch.zeros(2, 8, 8, 3), "inverse", 3.0)
    ok = (tuple(depth.shape) == (4, height, width) and torch.allclose(depth, true, rtol=1e-3)
          and torch.allclose(seq.cue, want.cue, atol=1e-3) and error is not None and "positive" in error)
    return ok, f"depth range {float(depth.min()):.2f}-{float(depth.max()):.2f} m; all-zero maps: {error}"


@check
def an_egoexo4d_take_runs_load_take_to_sampler_with_the_bundled_model(work: Path):
    """The exo2ego workflow's chain on a take of an Ego-Exo4D release in the input folder (no depth, the true
    Aria camera): Load Take lists and loads it from its index, Build Sequence gets no depth, and the bundled model
    samples it without its cue."""
    from syn2seq_pack.nodes import paths
    from syn2seq_pack.nodes.model import Syn2SeqLoadModel
    from syn2seq_pack.nodes.sequence import Syn2SeqBuildSequence
    from syn2seq_pack.nodes.takes import Syn2SeqLoadTake
    from syn2seq_pack.syn2seq_core.cli import main as cli
    release = work / "input" / "release"
    assert cli(["render-synthetic", "--layout", "egoexo4d", "--out", str(release), "--takes", "2", "--size", "32",
                "--ego-frames", "4", "--exo-frames", "4"]) == 0
    assert cli(["index-egoexo4d", str(release), "--out", str(release / "index.jsonl")]) == 0
    listed = [t for t in paths.list_takes() if t.startswith("release/index.jsonl | ")]
    model, width, height, n_tr = Syn2SeqLoadModel.execute(paths.BUNDLED_MODEL).result
    out = Syn2SeqLoadTake.execute(listed[0], width, height, 0, 0, 1).result
    exo, ego, exo_cams, ego_cams, fps, exo_depth = out[:6]
    seq = Syn2SeqBuildSequence.execute(exo_cams, ego_cams, "exo2ego", n_tr, exo_frames=exo,
                                       source_depth=exo_depth).result[0]
    frames = _sample(model, seq, steps=2)[1]
    error = raises(paths.load_take, "release/index.jsonl | no_such_take")
    ok = (len(listed) == 2 and exo_depth is None and seq.cue is None and ego_cams.fisheye is not None
          and tuple(frames.shape) == (len(seq), height, width, 3) and error is not None and "no_such_take" in error)
    return ok, f"listed {listed}; {len(seq)} frames sampled; unknown take: {error}"


@check
def evaluate_reports_metrics_and_lpips_unavailable(work: Path):
    import torch
    from syn2seq_pack.nodes.evaluate import Syn2SeqEvaluate

    gt = torch.rand(3, 32, 32, 3)
    noisy = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
    out = Syn2SeqEvaluate.execute(noisy, gt, "none")
    text, plot = out.result
    ok = ("psnr:" in text and "ssim:" in text and "lpips_alex: unavailable" in text
          and plot.ndim == 4 and plot.shape[-1] == 3 and out.ui["text"] == [text])
    return ok, text.replace("\n", " | ")



def _flat_depth(n: int, width: int, height: int, metres: float = 3.0):
    """[n, h, w] exo depth of a wall ``metres`` away: the depth_warp cue the bundled model reads."""
    import torch

    return torch.full((n, height, width), metres)


def _sequence(width: int, height: int, n_transition: int, exo_frames: int = 4, ego_frames: int = 4, seed: int = 0):
    import torch
    from syn2seq_pack.syn2seq_core.generation.sequence import build_sequence

    g = torch.Generator().manual_seed(seed)
    exo = torch.rand(exo_frames, 3, height, width, generator=g)
    seq = build_sequence(_cameras(exo_frames, 0.0, width, height), _cameras(ego_frames, 2.0, width, height),
                         exo_frames=exo, n_transition=n_transition)
    return seq.with_depth_cue(_flat_depth(exo_frames, width, height))


def _sample(model, seq, steps: int = 4, **options):
    from syn2seq_pack.nodes.model import Syn2SeqSampler

    options = {"scheduling": "full_sequence", "history_guidance": "conditional", "guidance_scale": 1.0, "seed": 0,
               **options}
    return Syn2SeqSampler.execute(model, seq, steps, options["scheduling"], options["history_guidance"],
                                  options["guidance_scale"], options["seed"], options.get("stabilization", 0.0)).result


@check
def comfy_model_management_loads_offloads_and_reloads_the_network(work: Path):
    import comfy.model_management as mm
    from syn2seq_pack.nodes import management, paths
    from syn2seq_pack.nodes.model import Syn2SeqLoadModel

    mm.unload_all_models()
    model, width, height, n_tr = Syn2SeqLoadModel.execute(paths.BUNDLED_MODEL, "fp32").result
    before = management.loaded_models()  # loading alone puts nothing on the compute device
    _sample(model, _sequence(width, height, n_tr))
    held = [m.model for m in mm.current_loaded_models]
    listed = management.loaded_models()
    mm.unload_all_models()  # what POST /free with unload_models runs
    after = management.loaded_models()
    _sample(model, _sequence(width, height, n_tr))
    again = management.loaded_models()
    ok = (before == [] and model.patcher in held and len(listed) == 1 and after == [] and len(again) == 1
          and listed[0]["loaded_bytes"] == listed[0]["model_bytes"] > 0)
    return ok, f"before {before}; after sampling {listed}; after unload {after}; after a second run {again}"


@check
def each_weight_dtype_samples_close_to_float32(work: Path):
    """Every weight_dtype runs, in the compute dtype of the policy, and stays close to an all-float32 run; the
    detail also reports fp16 compute (not used) for comparison."""
    import torch
    from syn2seq_pack.nodes import management, paths
    from syn2seq_pack.nodes.model import Syn2SeqLoadModel

    def psnr(a, b):
        return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean().clamp_min(1e-12)))

    ref_model = Syn2SeqLoadModel.execute(paths.BUNDLED_MODEL, "fp32").result[0]
    width, height = ref_model.size[1], ref_model.size[0]
    seq = _sequence(width, height, ref_model.model.transition_frames)
    generated = seq.context_mask == 0
    core_model = ref_model.ready(len(seq))
    reference = core_model.generate(seq, steps=8, dtype=torch.float32).frames[generated]
    fp16_compute = core_model.generate(seq, steps=8, dtype=torch.float16).frames[generated]
    scores, ok = {}, True
    for name in management.WEIGHT_DTYPES:
        model = Syn2SeqLoadModel.execute(paths.BUNDLED_MODEL, name).result[0]
        out = _sample(model, seq, steps=8)[0].frames[generated]
        value = psnr(out, reference)
        scores[f"{name} ({str(model.weight_dtype)[6:]} weights, {str(model.compute_dtype)[6:]} compute)"] = (
            round(value, 1), float((out - reference).abs().max()))
        ok = ok and bool(torch.isfinite(out).all()) and value >= 30.0
    scores["fp32 weights, fp16 compute (not used)"] = (round(psnr(fp16_compute, reference), 1),
                                                        float((fp16_compute - reference).abs().max()))
    return ok, f"PSNR dB / max abs difference of the generated frames against all-fp32 (8 steps): {scores}"


@check
def low_vram_partial_load_samples_like_a_full_load(work: Path):
    """With most weights left on the offload device and cast per layer (what --lowvram / --novram do), the
    network gives what it gives fully loaded."""
    import comfy.model_management as mm
    import torch
    from syn2seq_pack.nodes import paths
    from syn2seq_pack.nodes.model import Syn2SeqLoadModel

    model, width, height, n_tr = Syn2SeqLoadModel.execute(paths.BUNDLED_MODEL, "fp32").result
    seq = _sequence(width, height, n_tr)
    core_model = model.ready(len(seq))
    full = core_model.generate(seq, steps=4, dtype=model.compute_dtype).frames
    freed = model.patcher.partially_unload(model.patcher.offload_device, 10**12)
    casting = sum(1 for m in model.patcher.model.modules() if getattr(m, "comfy_cast_weights", False))
    partial = core_model.generate(seq, steps=4, dtype=model.compute_dtype).frames
    low_vram = bool(core_model.network.model_lowvram)
    mm.unload_all_models()
    ok = casting > 0 and low_vram and torch.allclose(partial, full, atol=1e-5)
    return ok, f"{freed} bytes offloaded, {casting} layers casting their weights; max difference " \
               f"{float((partial - full).abs().max()):.2e}"


@check
def memory_need_grows_with_frames_and_resolution(work: Path):
    from syn2seq_pack.nodes import management
    from syn2seq_pack.syn2seq_core.dfot.checkpoint import save_model
    from syn2seq_pack.syn2seq_core.generation.pipeline import build_network

    sizes = {}
    for side in (32, 64):
        net = build_network({"preset": "tiny", "height": side, "width": side, "max_frames": 16})
        path = work / "models" / f"random_{side}.safetensors"
        save_model(path, net)
        model = management.load(path, "fp32", name=path.name)
        sizes[side] = {frames: model.memory_required(frames) for frames in (4, 8, 16, 32)}
    s, l = sizes[32], sizes[64]
    # Linear in frames up to the window (16), flat beyond; per added frame, 4x the pixels cost ~4x the memory
    # (the rest is the same for both: the weight copies of bf16 autocast).
    ok = (s[4] < s[8] < s[16] == s[32] and abs((s[16] - s[8]) - 2 * (s[8] - s[4])) < 0.05 * (s[16] - s[8])
          and all(l[f] - l[4] > 3.5 * (s[f] - s[4]) for f in (8, 16)))
    mib = {side: {f: round(v / 2**20, 1) for f, v in d.items()} for side, d in sizes.items()}
    return ok, f"MiB of working memory by frame side and frames (window 16): {mib}"


@check
def sampler_preview_is_a_strip_of_the_generated_frames(work: Path):
    import torch
    from comfy.cli_args import LatentPreviewMethod, args
    from syn2seq_pack.nodes import progress
    from syn2seq_pack.syn2seq_core.dfot.model import dit3d_preset

    config = dit3d_preset("tiny")
    x0 = torch.zeros(1, 12, 3, 32, 32)
    x0[0, 5] = 1.0  # a white generated frame in model space
    generate = torch.zeros(1, 12, dtype=torch.bool)
    generate[0, 4:12] = True
    strip = progress.x0_strip({"x0": x0, "generate": generate}, config)
    pixels = torch.tensor(list(strip.getdata()), dtype=torch.float32).reshape(32, 8 * 32, 3)
    none_generated = progress.x0_strip({"x0": x0, "generate": torch.zeros(1, 12, dtype=torch.bool)}, config)
    saved = args.preview_method
    try:
        args.preview_method = LatentPreviewMethod.NoPreviews
        off = progress.previews_enabled()
        args.preview_method = LatentPreviewMethod.Auto
        on = progress.previews_enabled()
    finally:
        args.preview_method = saved
    ok = (strip.size == (8 * 32, 32) and float(pixels[:, 32:64].mean()) == 255.0
          and float(pixels[:, :32].mean()) == 128.0 and none_generated is None and on and not off)
    return ok, f"strip {strip.size}; previews with none: {off}, with auto: {on}"



@check
def image_to_video_node_runs_a_dfot_family_model_in_keyframe_mode(work: Path):
    """A small random-weight U-ViT3D written as the converter writes DFoT models (reference grid, RE10K camera
    convention): the node fits a 16:9 image and track to the model and fills every frame."""
    import torch
    from syn2seq_pack.nodes import management
    from syn2seq_pack.nodes.model import Syn2SeqImageToVideo
    from syn2seq_pack.syn2seq_core.dfot import uvit3d as uvit
    from syn2seq_pack.syn2seq_core.dfot.checkpoint import save_model

    torch.manual_seed(0)
    net = uvit.UViT3DPose(uvit.uvit3d_preset("base", height=16, width=16, channels=(32, 32, 48, 48), num_heads=2,
                                             num_updown_blocks=(1, 1, 1), num_mid_blocks=1, emb_channels=32,
                                             max_frames=4))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = work / "models" / "dfot_tiny.safetensors"
    save_model(path, net, extra_metadata={
        "sampling": {"grid": "dfot_ddim", "timesteps": 1000, "steps": 50}, "camera_convention": "re10k"})
    model = management.load(path, "fp32", name=path.name)
    image = torch.rand(1, 36, 64, 3)  # ComfyUI IMAGE, 16:9
    track = _cameras(9, 0.0, 64, 36)
    frames, fitted = Syn2SeqImageToVideo.execute(model, image, track, "0", "keyframes", 0.5, 3, "full_sequence",
                                                 "conditional", 1.0, 0.0, 0).result
    ok = (tuple(frames.shape) == (9, 16, 16, 3) and fitted.size == (16, 16) and model.model.default_steps == 50
          and model.model.schedule.grid == "dfot_ddim" and bool((frames[1:].std(dim=(1, 2, 3)) > 0).all()))
    error = raises(Syn2SeqImageToVideo.execute, model, image, track, "0,x", "sliding", 0.5, 3, "full_sequence",
                   "conditional", 1.0, 0.0, 0)
    return ok and error is not None and "image_frames" in error, f"frames {tuple(frames.shape)}; bad frames: {error}"


@check
def load_model_node_merges_a_trained_lora(work: Path):
    """Syn2SeqLoadModel's lora input (a LoRA run's lora.safetensors, trained by the test beside a base): the
    network it loads has the weights of the run's merged model, and a LoRA of another network is refused."""
    import folder_paths
    from syn2seq_pack.nodes import paths
    from syn2seq_pack.nodes.model import Syn2SeqLoadModel

    folder_paths.add_model_folder_path(paths.MODEL_FOLDER, str(work / "models"))
    listed = "lora_adapters.safetensors" in paths.list_loras() and paths.list_loras()[0] == paths.NO_LORA
    with_lora = Syn2SeqLoadModel.execute("lora_base.safetensors", "fp32", "lora_adapters.safetensors").result[0]
    merged = Syn2SeqLoadModel.execute("lora_merged.safetensors", "fp32").result[0]
    plain = Syn2SeqLoadModel.execute("lora_base.safetensors", "fp32", paths.NO_LORA).result[0]
    a, b, c = (m.model.network.state_dict() for m in (with_lora, merged, plain))
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    changed = max(float((a[k].float() - c[k].float()).abs().max()) for k in a)
    error = raises(Syn2SeqLoadModel.execute, paths.BUNDLED_MODEL, "fp32", "lora_adapters.safetensors")
    refused = error is not None and "trained on this network" in error
    return (listed and diff < 1e-6 and changed > 1e-4 and refused and "lora_adapters" in with_lora.name,
            f"listed {listed}; merged vs node max |dW| {diff:.2e}; vs base {changed:.2e}; other base: {error}")


@check
def estimate_cameras_node_recovers_a_textured_take_and_names_the_extra(work: Path):
    """Syn2SeqEstimateCameras on the ego frames of a textured procedural take (a ComfyUI IMAGE batch): one camera per
    frame following the true track (relative rotation per frame against the truth), the camera-path widget's payload,
    a static camera with its guess reported; without pycolmap a long clip is refused naming the extra to install."""
    import math

    import torch
    from einops import rearrange
    from syn2seq_pack.nodes.estimate_cameras import Syn2SeqEstimateCameras
    from syn2seq_pack.syn2seq_core.data import synthetic
    from syn2seq_pack.syn2seq_core.geometry import sfm
    from syn2seq_pack.syn2seq_core.geometry.align import camera_accuracy

    take = synthetic.render_take(1, synthetic.SyntheticConfig(size=160, exo_frames=1, ego_frames=16, textured=True))
    images = rearrange(take.ego_frames, "t c h w -> t h w c")
    fov = math.degrees(2 * math.atan(0.5 / float(take.ego_cameras.K[0, 0])))
    out = Syn2SeqEstimateCameras.execute(images, "global", False, fov, "pinhole", 1, 0, 640, 0.5, 0.0, 0)
    cams, registered, report = out.result
    acc = camera_accuracy(cams.c2w, take.ego_cameras.c2w)
    payload = out.ui["syn2seq_camera_path"][0]["segments"][0]
    static = Syn2SeqEstimateCameras.execute(images, "global", True, 0.0, "pinhole", 1, 0, 640, 0.5, 0.0, 0).result
    saved = sfm._import_pycolmap
    try:
        sfm._import_pycolmap = lambda: None
        error = raises(Syn2SeqEstimateCameras.execute, torch.rand(sfm.OPENCV_AUTO_MAX_FRAMES + 1, 32, 32, 3),
                       "global", False, 0.0, "pinhole", 1, 0, 640, 0.5, 0.0, 0)
    finally:
        sfm._import_pycolmap = saved
    ok = (len(cams) == 16 and cams.size == (160, 160) and registered >= 14 and acc.rot_err_deg_mean < 2.0
          and payload["count"] == 16 and len(payload["K"]) == 16 and len(static[0]) == 16
          and "guessed" in static[2] and error is not None and "syn2seq[cameras]" in error)
    return ok, (f"{report.splitlines()[0]}; relative rotation error {acc.rot_err_deg_mean:.3f} deg/frame; "
                f"static: {static[2].splitlines()[0]}; without pycolmap: {error}")


def main(argv: list[str], checks: dict | None = None) -> int:
    """Run ``checks`` (default this file's) after :func:`setup` and print their results as one JSON line."""
    comfy, work = argv[1], Path(argv[2])
    setup(comfy, work)
    results = {}
    for name, fn in (CHECKS if checks is None else checks).items():
        try:
            ok, detail = fn(work)
            results[name] = {"ok": bool(ok), "detail": str(detail)}
        except Exception:  # noqa: BLE001 - every check reports its own failure
            results[name] = {"ok": False, "detail": traceback.format_exc()}
    print("SYN2SEQ_RESULTS " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
