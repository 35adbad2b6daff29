"""A take in ComfyUI's input folder that names a file outside it, through a real ComfyUI server.

Each hostile take is the bundled sample take with its exo cameras pointing at a *valid* secret camera track
outside the input folder (``../`` in take.json, an absolute name, a link, a COLMAP file that is a link). The
secret's camera centres are unique numbers and its frame names a unique marker: had the loader followed the
name, the centres would come back in the node's UI output (the camera-path widget). The prompt must fail
with a node error naming the take, the entry and the resolved path; the server must stay up and run a good
prompt next; and no trace of the secret may reach the history, the UI outputs or any file ComfyUI wrote.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from .harness import PACK_ROOT, status_messages

SAMPLE = PACK_ROOT / "syn2seq_core" / "assets" / "sample_take"
MARKER = f"SYN2SEQ-SECRET-{uuid.uuid4().hex[:12]}"
CENTRE = (7321.9472, -5813.2764, 9042.6153)  # the secret's camera centre: unique digits to search for
TRACES = (MARKER, "7321.947", "5813.276", "9042.615")


def prompt(take: str, frames: int = 0) -> dict:
    """Load Take -> Preview Image (an output node): the take loader's UI output lands in the history."""
    return {
        "1": {"class_type": "Syn2SeqLoadTake",
              "inputs": {"take": take, "width": 0, "height": 0, "start": 0, "frames": frames, "stride": 1}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


@pytest.fixture(scope="module")
def secret(comfy_server):
    """Secret camera tracks outside ComfyUI's input folder (in the server's base folder)."""
    folder = comfy_server.base / f"secret_{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    doc = json.loads((SAMPLE / "exo_cameras.json").read_text(encoding="utf-8"))
    for frame in doc["frames"]:
        for row, value in zip(frame["c2w"], CENTRE):
            row[3] = value
        frame["name"] = MARKER
    (folder / "exo_cameras.json").write_text(json.dumps(doc), encoding="utf-8")
    n = len(doc["frames"])
    (folder / "images.txt").write_text(  # identity rotation: the centre is -t
        "# Image list\n" + "".join(f"{i + 1} 1 0 0 0 {-CENTRE[0]} {-CENTRE[1]} {-CENTRE[2]} 1 {MARKER}_{i}.png\n\n"
                                   for i in range(n)), encoding="utf-8")
    return folder


def make_take(comfy_server, secret, kind: str) -> str:
    name = f"containment_{kind}"
    take = comfy_server.input_dir / name
    if take.exists():
        shutil.rmtree(take)
    shutil.copytree(SAMPLE, take)
    doc = json.loads((take / "take.json").read_text(encoding="utf-8"))
    if kind == "dotdot":
        doc["exo"]["cameras"] = f"../../{secret.name}/exo_cameras.json"  # input/<take>/../../ = the base folder
    elif kind == "absolute":
        doc["exo"]["cameras"] = str(secret / "exo_cameras.json")
    elif kind == "symlink":
        (take / "exo_cameras.json").unlink()
        (take / "exo_cameras.json").symlink_to(secret / "exo_cameras.json")
    elif kind == "colmap_symlink":
        (take / "exo_cameras.json").unlink()
        (take / "colmap").mkdir()
        (take / "colmap" / "cameras.txt").write_text("# Camera list\n1 PINHOLE 64 64 91.5 91.5 32 32\n")
        (take / "colmap" / "images.txt").symlink_to(secret / "images.txt")
        doc["exo"]["cameras"] = "colmap"
    (take / "take.json").write_text(json.dumps(doc), encoding="utf-8")
    return name


EXPECTED = {  # kind -> (entry named in the error, the secret file it resolves to, how it leaves)
    "dotdot": ("take.json exo.cameras", "exo_cameras.json", "'..' leads out of the folder"),
    "absolute": ("take.json exo.cameras", "exo_cameras.json", "an absolute path"),
    "symlink": ("take.json exo.cameras", "exo_cameras.json", "a link leads out of the folder"),
    "colmap_symlink": ("colmap/images.txt", "images.txt", "a link leads out of the folder"),
}


def files_written(comfy_server) -> list:
    return [p for sub in ("output", "temp") for p in (comfy_server.base / sub).rglob("*") if p.is_file()]


def assert_no_trace(text: str, where: str) -> None:
    for trace in TRACES:
        assert trace not in text, f"{trace!r} (from the secret) found in {where}"


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_take_naming_a_file_outside_the_input_folder_fails_cleanly(comfy_server, secret, kind):
    entry, secret_file, reason = EXPECTED[kind]
    name = make_take(comfy_server, secret, kind)
    bad = comfy_server.run(prompt(name), timeout=300)

    assert bad["status"]["status_str"] == "error", json.dumps(bad)[:3000]
    errors = [m for kind_, m in status_messages(bad) if kind_ == "execution_error"]
    assert errors and errors[0]["node_type"] == "Syn2SeqLoadTake", status_messages(bad)
    message = errors[0]["exception_message"]
    assert f"take '{name}' {entry}" in message, message
    assert str((secret / secret_file).resolve()) in message and reason in message, message
    assert errors[0]["exception_type"].endswith("OutsideFolderError"), errors[0]
    assert not bad.get("outputs"), bad["outputs"]  # nothing ran past the loader, no UI output

    # The server is still up and runs a good prompt (frames differs per case so it is not a cache hit).
    good = comfy_server.run(prompt("(bundled) sample_take", frames=1 + sorted(EXPECTED).index(kind)), timeout=300)
    assert good["status"]["status_str"] == "success", json.dumps(status_messages(good))[:3000]
    assert good["outputs"]["1"]["syn2seq_camera_path"][0]["segments"], good["outputs"]  # the UI channel works

    # No trace of the secret anywhere a client (or a later reader of the output folder) could see.
    assert_no_trace(json.dumps(comfy_server.get("/history")), "/history")
    assert_no_trace(json.dumps(comfy_server.get("/queue")), "/queue")
    for path in files_written(comfy_server):
        assert_no_trace(path.read_bytes().decode("latin-1"), str(path))
    assert_no_trace(comfy_server.log(), "the server log")
