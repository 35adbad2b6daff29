"""Files named by a take (or any other folder with a manifest) stay inside it, links followed.

Each hostile case sets up a *valid* file outside the folder (a secret the loader would happily read), so
without the containment check the load succeeds and the test fails; with it, the load is refused with a
``Syn2SeqInputError`` that names the owner (the take), the entry and the resolved path.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from syn2seq_core.data.egoexo4d import find_egoexo4d_takes, load_egoexo4d_take
from syn2seq_core.data.takes import find_takes, load_take, write_take
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.cameras import Cameras, look_at
from syn2seq_core.io.poses import load_cameras, save_cameras
from syn2seq_core.io.safe_paths import OutsideFolderError, check_inside, resolve_inside
from syn2seq_core.io.video import write_video

from .test_takes import GOPRO_HEADER, GOPRO_ROWS

FAST = {"preset": "ultrafast"}
REPO = Path(__file__).resolve().parents[2]
MARKER = "SYN2SEQ-SECRET-7f3a9c"


def frames(T, H=16, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, 3, H, W, generator=g)


def static_camera(W=16, H=16, at=(4.0, 0.0, 1.5)):
    c2w = look_at(torch.tensor([at], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64))
    return Cameras(c2w, torch.tensor([[0.8, 0.8, 0.5, 0.5]]), W, H)


def track(n, W=16, H=16):
    eye = torch.stack([torch.tensor([0.5 + 0.1 * i, 0.1 * math.sin(i), 1.6], dtype=torch.float64) for i in range(n)])
    return Cameras(look_at(eye, eye + torch.tensor([1.0, 0.2, -0.3], dtype=torch.float64)),
                   torch.tensor([[0.45, 0.45, 0.5, 0.5]]), W, H)


@pytest.fixture
def world(tmp_path):
    """``tmp/takes/good`` (exo video + exo/ego cameras, 3 frames) and valid secrets in ``tmp/secret/``."""
    secret = tmp_path / "secret"
    secret.mkdir()
    save_cameras(static_camera(at=(7321.9472, -5813.2764, 9042.6153)), secret / "exo_cameras.json", names=[MARKER])
    save_cameras(track(3), secret / "ego_cameras.json", names=[MARKER] * 3)
    write_video(secret / "private.mp4", frames(3, seed=9), fps=30, **FAST)
    (secret / "colmap").mkdir()
    (secret / "colmap" / "cameras.txt").write_text("# camera list\n1 PINHOLE 16 16 12 12 8 8\n")
    (secret / "colmap" / "images.txt").write_text(
        "# image list\n" + "".join(f"{i + 1} 1 0 0 0 {-float(i)} 0 0 1 f{i}.png\n\n" for i in range(3)))
    take = tmp_path / "takes" / "good"
    write_take(take, frames(3), static_camera(), ego_cameras=track(3), fps=30, **FAST)
    return {"take": take, "secret": secret, "root": tmp_path}


def edit_take_json(take: Path, view: str, **entries) -> None:
    doc = json.loads((take / "take.json").read_text())
    doc.setdefault(view, {}).update(entries)
    (take / "take.json").write_text(json.dumps(doc))


def refused(take: Path, entry: str, resolved: Path, reason: str | None = None) -> OutsideFolderError:
    with pytest.raises(Syn2SeqInputError) as e:
        load_take(take)
    msg = str(e.value)
    assert isinstance(e.value, OutsideFolderError), msg
    assert f"take '{take.name}'" in msg and entry in msg and str(resolved.resolve()) in msg, msg
    if reason:
        assert reason in msg, msg
    assert MARKER not in msg
    return e.value


# --- the shared check ---------------------------------------------------------------------------------
def test_resolve_inside_refuses_absolute_dotdot_links_and_loops(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("a")
    (tmp_path / "out.txt").write_text("out")
    (root / "in_link").symlink_to(root / "sub" / "a.txt")
    (root / "out_link").symlink_to(tmp_path / "out.txt")
    (root / "dir_out").symlink_to(tmp_path, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    kw = {"owner": "take 't'", "entry": "take.json exo.video"}
    assert resolve_inside(root, "sub/a.txt", **kw) == root / "sub" / "a.txt"
    assert resolve_inside(root, "in_link", **kw) == root / "in_link"  # a link that stays inside is fine
    assert resolve_inside(root, "sub/../sub/a.txt", **kw) == root / "sub" / "../sub/a.txt"
    assert resolve_inside(root, "missing.txt", **kw) == root / "missing.txt"  # existence is the caller's
    cases = {str(tmp_path / "out.txt"): "an absolute path", "../out.txt": "'..' leads out",
             "sub/../../out.txt": "'..' leads out", "out_link": "a link leads out",
             "dir_out/out.txt": "a link leads out"}
    for name, reason in cases.items():
        with pytest.raises(OutsideFolderError) as e:
            resolve_inside(root, name, **kw)
        msg = str(e.value)
        assert "take 't' take.json exo.video" in msg and reason in msg and str(tmp_path / "out.txt") in msg, msg
        assert e.value.resolved == (tmp_path / "out.txt").resolve()
    with pytest.raises(Syn2SeqInputError, match="link loop"):
        resolve_inside(root, "loop", **kw)
    for bad in ("", "a\x00b", 3):
        with pytest.raises(Syn2SeqInputError, match="take.json exo.video"):
            resolve_inside(root, bad, **kw)
    assert check_inside(root, root / "sub" / "a.txt", **kw) == root / "sub" / "a.txt"
    with pytest.raises(OutsideFolderError, match="a link leads out"):
        check_inside(root, root / "out_link", **kw)


# --- take.json names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("view,key,secret_name", [("exo", "cameras", "exo_cameras.json"),
                                                   ("ego", "cameras", "ego_cameras.json"),
                                                   ("exo", "video", "private.mp4")])
def test_take_json_names_that_climb_out_are_refused(world, view, key, secret_name):
    take, secret = world["take"], world["secret"]
    edit_take_json(take, view, **{key: f"../../secret/{secret_name}"})
    refused(take, f"take.json {view}.{key}", secret / secret_name, "'..' leads out")


@pytest.mark.parametrize("view,key,secret_name", [("exo", "cameras", "exo_cameras.json"),
                                                   ("exo", "video", "private.mp4")])
def test_take_json_absolute_names_are_refused(world, view, key, secret_name):
    take, secret = world["take"], world["secret"]
    edit_take_json(take, view, **{key: str(secret / secret_name)})
    refused(take, f"take.json {view}.{key}", secret / secret_name, "an absolute path")


def test_take_json_name_of_a_link_out_of_the_take_is_refused(world):
    take, secret = world["take"], world["secret"]
    (take / "cams").mkdir()
    (take / "cams" / "exo.json").symlink_to(secret / "exo_cameras.json")
    edit_take_json(take, "exo", cameras="cams/exo.json")
    refused(take, "take.json exo.cameras", secret / "exo_cameras.json", "a link leads out")


def test_take_json_itself_a_link_out_of_the_take_is_refused(world):
    take, secret = world["take"], world["secret"]
    doc = json.loads((take / "take.json").read_text())
    doc["exo"]["cameras"] = "exo_cameras.json"
    (secret / "take.json").write_text(json.dumps(doc))
    (take / "take.json").unlink()
    (take / "take.json").symlink_to(secret / "take.json")
    refused(take, "take.json", secret / "take.json", "a link leads out")


def test_cameras_options_cannot_move_the_folder_the_reader_keeps_to(world):
    take = world["take"]
    for key in ("root", "owner"):
        edit_take_json(take, "exo", cameras_options={key: "/"})
        with pytest.raises(Syn2SeqInputError, match=f"exo.cameras_options.*reserved keys \\['{key}'\\]"):
            load_take(take)


# --- auto-discovered files that are links ----------------------------------------------------------------
@pytest.mark.parametrize("name, target, entry", [("exo_cameras.json", "exo_cameras.json", "exo cameras"),
                                                 ("exo.mp4", "private.mp4", "exo video")])
def test_symlinked_file_out_of_the_take_is_refused(world, name, target, entry):
    take, secret = world["take"], world["secret"]
    (take / "take.json").unlink()  # the files are found by their default names
    (take / name).unlink()
    (take / name).symlink_to(secret / target)
    refused(take, f"{entry} {name}", secret / target, "a link leads out")


def test_symlinked_colmap_files_are_refused(world):
    take, secret = world["take"], world["secret"]
    (take / "take.json").unlink()
    (take / "exo_cameras.json").unlink()
    model = take / "exo_cameras"
    model.mkdir()
    (model / "cameras.txt").write_text("# camera list\n1 PINHOLE 16 16 12 12 8 8\n")
    (model / "images.txt").symlink_to(secret / "colmap" / "images.txt")
    refused(take, "exo_cameras/images.txt", secret / "colmap" / "images.txt", "a link leads out")
    (model / "images.txt").unlink()
    (model / "images.txt").write_text((secret / "colmap" / "images.txt").read_text())
    (model / "cameras.txt").unlink()
    (model / "cameras.txt").symlink_to(secret / "colmap" / "cameras.txt")
    refused(take, "exo_cameras/cameras.txt", secret / "colmap" / "cameras.txt", "a link leads out")
    # the whole COLMAP folder a link out of the take
    for f in ("cameras.txt", "images.txt"):
        (model / f).unlink()
    model.rmdir()
    model.symlink_to(secret / "colmap", target_is_directory=True)
    refused(take, "exo cameras exo_cameras", secret / "colmap", "a link leads out")


def test_colmap_folder_loaded_directly_keeps_its_files_inside(world, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "cameras.txt").write_text("# camera list\n1 PINHOLE 16 16 12 12 8 8\n")
    (model / "images.txt").symlink_to(world["secret"] / "colmap" / "images.txt")
    with pytest.raises(OutsideFolderError, match="images.txt.*a link leads out"):
        load_cameras(model)
    (model / "images.txt").unlink()
    (model / "images.txt").write_text((world["secret"] / "colmap" / "images.txt").read_text())
    assert len(load_cameras(model)) == 3


def test_nerf_image_named_outside_its_folder_is_refused(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "outside.png")
    folder = tmp_path / "nerf"
    folder.mkdir()
    doc = {"camera_angle_x": 0.8, "frames": [{"file_path": "../outside.png", "transform_matrix": torch.eye(4).tolist()}]}
    (folder / "transforms.json").write_text(json.dumps(doc))
    with pytest.raises(OutsideFolderError, match=r"frames\[0\].file_path.*'\.\.' leads out"):
        load_cameras(folder)
    (folder / "inside.png").symlink_to(tmp_path / "outside.png")
    doc["frames"][0]["file_path"] = "inside.png"
    (folder / "transforms.json").write_text(json.dumps(doc))
    with pytest.raises(OutsideFolderError, match="a link leads out"):
        load_cameras(folder)
    (folder / "inside.png").unlink()
    Image.new("RGB", (40, 30)).save(folder / "inside.png")
    assert load_cameras(folder).size == (40, 30)


def test_video_that_is_a_concat_script_naming_other_files_is_refused(world):
    """FFmpeg reads a text file as a playlist / concat script and opens the files it names: a take's video
    must be a real container, or a link out of the take would be read through it."""
    take, secret = world["take"], world["secret"]
    (take / "inner.mp4").symlink_to(secret / "private.mp4")
    (take / "exo.mp4").unlink()
    (take / "exo.mp4").write_text("ffconcat version 1.0\nfile inner.mp4\n")
    with pytest.raises(Syn2SeqInputError, match="take 'good' take.json exo.video.*text file") as e:
        load_take(take)
    assert "playlist" in str(e.value)
    (take / "exo.mp4").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\ninner.mp4\n#EXT-X-ENDLIST\n")
    with pytest.raises(Syn2SeqInputError, match="text file"):
        load_take(take)


def test_links_that_stay_inside_the_take_and_a_linked_take_folder_load(world, tmp_path):
    take = world["take"]
    (take / "cams").mkdir()
    os.replace(take / "exo_cameras.json", take / "cams" / "real.json")
    (take / "exo_cameras.json").symlink_to(Path("cams") / "real.json")
    loaded = load_take(take)
    assert len(loaded.exo_cameras) == 3
    alias = tmp_path / "alias"
    alias.symlink_to(take, target_is_directory=True)  # the folder itself may be a link (the caller chose it)
    assert load_take(alias).name == "alias"


# --- eval roots -----------------------------------------------------------------------------------------
def test_find_takes_refuses_a_take_folder_linked_from_outside_the_root(world, tmp_path):
    root = world["root"] / "takes"
    elsewhere = tmp_path / "elsewhere"
    write_take(elsewhere / "far", frames(2), static_camera(), fps=30, **FAST)
    (root / "inside_alias").symlink_to(root / "good", target_is_directory=True)
    assert find_takes(root) == [root / "good", root / "inside_alias"]  # a link that stays inside is fine
    (root / "far").symlink_to(elsewhere / "far", target_is_directory=True)
    with pytest.raises(OutsideFolderError) as e:
        find_takes(root)
    msg = str(e.value)
    assert f"takes root '{root}'" in msg and "take folder far" in msg and str((elsewhere / "far").resolve()) in msg


def test_egoexo4d_reader_keeps_to_the_take_folder(tmp_path):
    take = tmp_path / "takes" / "bike"
    small = take / "frame_aligned_videos" / "downscaled" / "448"
    small.mkdir(parents=True)
    write_video(small / "cam01.mp4", frames(3, 36, 64), fps=30, **FAST)
    (take / "trajectory").mkdir()
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "gopro_calibs.csv").write_text("\n".join([GOPRO_HEADER, *GOPRO_ROWS]) + "\n")
    (take / "trajectory" / "gopro_calibs.csv").symlink_to(secret / "gopro_calibs.csv")
    with pytest.raises(OutsideFolderError) as e:
        load_egoexo4d_take(take, "cam01", ego=False)
    msg = str(e.value)
    assert "Ego-Exo4D take 'bike'" in msg and "trajectory/gopro_calibs.csv" in msg
    assert str((secret / "gopro_calibs.csv").resolve()) in msg
    (take / "trajectory" / "gopro_calibs.csv").unlink()
    (take / "trajectory" / "gopro_calibs.csv").write_text((secret / "gopro_calibs.csv").read_text())
    assert load_egoexo4d_take(take, "cam01", ego=False).exo_info.frames == 3
    os.replace(small / "cam01.mp4", secret / "cam01.mp4")
    (small / "cam01.mp4").symlink_to(secret / "cam01.mp4")
    with pytest.raises(OutsideFolderError, match="downscaled/448/cam01.mp4.*a link leads out"):
        load_egoexo4d_take(take, "cam01", ego=False)
    (tmp_path / "takes" / "linked").symlink_to(secret, target_is_directory=True)
    (secret / "frame_aligned_videos").mkdir()
    with pytest.raises(OutsideFolderError, match="take folder linked"):
        find_egoexo4d_takes(tmp_path / "takes")


# --- the command line -----------------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "syn2seq_core", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_cli_exo2ego_refuses_a_take_naming_a_file_outside_and_writes_nothing(world, tmp_path):
    take, secret = world["take"], world["secret"]
    edit_take_json(take, "ego", cameras="../../secret/ego_cameras.json")
    out = tmp_path / "out"
    r = cli("exo2ego", "--take", str(take), "--out", str(out), "--steps", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("syn2seq exo2ego: error: take 'good' take.json ego.cameras"), r.stderr
    assert str((secret / "ego_cameras.json").resolve()) in line, line
    assert MARKER not in r.stdout + r.stderr
    assert not out.exists()


def test_cli_eval_refuses_a_take_folder_linked_from_outside_the_root(world, tmp_path):
    root = world["root"] / "takes"
    write_take(tmp_path / "elsewhere" / "far", frames(2), static_camera(), ego_cameras=track(2), fps=30, **FAST)
    (root / "far").symlink_to(tmp_path / "elsewhere" / "far", target_is_directory=True)
    report = tmp_path / "report.json"
    r = cli("eval", "--takes", str(root), "--out", str(report), "--steps", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"syn2seq eval: error: takes root '{root}' take folder far"), r.stderr
    assert str((tmp_path / "elsewhere" / "far").resolve()) in line
    assert not report.exists()
