"""`syn2seq eval --index index.jsonl --takes ROOT`: an Ego-Exo4D release scored through its index.

The release is rendered from the procedural world (``syn2seq render-synthetic --layout egoexo4d``'s writer), its
scenarios renamed in ``takes.json`` so that the takes fall into categories, then indexed by ``syn2seq
index-egoexo4d``. The model is the tiny random-weight DiT of ``test_pipeline`` (32x32, no cue).
"""

from __future__ import annotations

import json
import shutil

import pytest

from syn2seq_core.cli import main
from syn2seq_core.data.egoexo4d_fixture import write_egoexo4d_fixture
from syn2seq_core.data.index import load_takes, read_index, select
from syn2seq_core.data.synthetic import SyntheticConfig
from syn2seq_core.errors import Syn2SeqInputError
from syn2seq_core.safe_paths import OutsideFolderError

from .test_pipeline import DATA, MODEL, write_random_model

CFG = SyntheticConfig(size=32, exo_frames=4, ego_frames=4, fps=8.0, supersample=1, threads=1)
SPLITS = ("val", "val", "train")
# takes.json scenarios; the third shows how runs of whitespace are made one space
SCENARIOS = ("Bike Repair", "Cooking", "  Rock \t Climbing ")
CATEGORIES = ("Bike Repair", "Cooking", "Rock Climbing")


def _release(root, scenarios=SCENARIOS):
    written = write_egoexo4d_fixture(root, [31, 32, 33], CFG, exo_cameras=2, splits=SPLITS)
    takes_file = root / "takes.json"
    takes = json.loads(takes_file.read_text())
    for take, scenario in zip(takes, scenarios):
        take["parent_task_name"] = scenario
    takes_file.write_text(json.dumps(takes))
    return [w.take_name for w in written]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval_egoexo4d")
    root = base / "release"
    names = _release(root)
    index = base / "index.jsonl"
    assert main(["index-egoexo4d", str(root), "--out", str(index)]) == 0
    model = write_random_model(base / "model.safetensors", MODEL, DATA)
    return {"base": base, "root": root, "names": names, "index": index, "model": model}


def _eval(world, *extra, root=None, index=None):
    return main(["eval", "--index", str(index or world["index"]), "--takes", str(root or world["root"]),
                 "--model", str(world["model"]), "--steps", "1", *extra])


def test_read_index_recognises_an_egoexo4d_index_and_loads_its_takes(world, tmp_path):
    entries = read_index(world["index"])
    assert [(e.take, e.category, e.split) for e in entries] == list(zip(world["names"], CATEGORIES, SPLITS))
    assert [e.take for e in select(entries, "val")] == world["names"][:2]
    renamed = tmp_path / "index.txt"  # recognised by its header line, whatever the suffix
    shutil.copy(world["index"], renamed)
    assert [e.take for e in read_index(renamed)] == world["names"]
    takes = load_takes(world["root"], entries, world["index"])
    for take, entry in zip(takes, entries):
        # the index's exo camera (takes.json best_exo, not the loader's default cam01) and the true Aria camera
        assert entry.egoexo4d.exo_camera == "cam02" and take.exo_video.name == "cam02.mp4"
        assert take.ego_cameras.lens_model == "fisheye624" and entry.egoexo4d.ego_camera == "calibration"
        assert take.name == entry.take and take.num_frames("ego") == CFG.ego_frames
    # the CSV/JSON index is read as before: no Ego-Exo4D entry behind it
    csv_index = tmp_path / "i.csv"
    csv_index.write_text("take,category,split\na,Cooking,test\n", encoding="utf-8")
    assert read_index(csv_index)[0].egoexo4d is None


def test_bad_egoexo4d_indexes_are_refused_naming_the_file_and_the_entry(world, tmp_path):
    header, *lines = world["index"].read_text().splitlines()
    long_name = json.loads(lines[1])
    long_name["category"] = "x" * 70
    bad = tmp_path / "long.jsonl"
    bad.write_text("\n".join([header, lines[0], json.dumps(long_name)]) + "\n")
    with pytest.raises(Syn2SeqInputError, match=rf"long.jsonl take '{world['names'][1]}' category.*1 to 64"):
        read_index(bad)
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join([header, lines[0], lines[0]]) + "\n")
    with pytest.raises(Syn2SeqInputError, match="twice.jsonl take .* each take once"):
        read_index(twice)
    other = tmp_path / "other.jsonl"  # JSON lines without the indexer's header
    other.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match="other.jsonl.*syn2seq.egoexo4d_index"):
        read_index(other)


def test_eval_scores_the_indexed_takes_per_category(world):
    out = world["base"] / "report" / "eval.json"
    assert _eval(world, "--out", str(out)) == 0
    data = json.loads(out.read_text())
    assert data["summary"]["takes"] == 3 and data["index"] == str(world["index"])
    assert sorted(data["categories"]) == sorted(CATEGORIES)
    assert all(part["takes"] == 1 for part in data["categories"].values())
    assert {"sample", "copy_last", "flat_color", "mean_target"} <= set(data["summary"]["methods"])
    per_take = data["per_take"]
    assert [(t["take"], t["category"]) for t in per_take] == list(zip(world["names"], CATEGORIES))
    for t, split in zip(per_take, SPLITS):
        assert t["egoexo4d"]["exo_camera"] == "cam02" and t["egoexo4d"]["ego_camera"] == "calibration"
        assert t["egoexo4d"]["split"] == split and t["methods"]["sample"]["psnr"]["mean"] > 0
    rows = out.with_suffix(".csv").read_text()
    assert "Rock Climbing" in rows and "Bike Repair" in rows


def test_eval_keeps_the_takes_of_the_split(world, capsys):
    out = world["base"] / "val.json"
    assert _eval(world, "--split", "val", "--no-baselines", "--out", str(out)) == 0
    data = json.loads(out.read_text())
    assert [t["take"] for t in data["per_take"]] == world["names"][:2] and data["split"] == "val"
    assert sorted(data["categories"]) == ["Bike Repair", "Cooking"]
    capsys.readouterr()
    assert _eval(world, "--split", "test") == 2  # the index has no test take
    assert "['train', 'val']" in capsys.readouterr().err
    # one take is scored too (issue 28), its means without CI: test_eval_of_a_split_with_one_take below


def test_a_take_damaged_after_indexing_stops_eval_naming_it(world, tmp_path, capsys):
    """As for a pack take that does not load: a clear error before any work, never a silent skip."""
    root = tmp_path / "release"
    shutil.copytree(world["root"], root)
    name = world["names"][1]
    (root / "takes" / name / "trajectory" / "closed_loop_trajectory.csv").unlink()
    capsys.readouterr()
    assert _eval(world, root=root) == 2
    err = capsys.readouterr().err
    assert f"index '{world['index']}' take '{name}'" in err and "closed_loop_trajectory.csv" in err
    assert "Re-run syn2seq index-egoexo4d" in err
    shutil.rmtree(root / "takes" / name)  # the whole folder gone: refused before any take is read
    assert _eval(world, root=root) == 2
    err = capsys.readouterr().err
    assert f"take '{name}'" in err and "nothing there" in err and "release root" in err


def test_a_take_folder_linked_out_of_the_root_is_refused(world, tmp_path, capsys):
    root = tmp_path / "release"
    shutil.copytree(world["root"], root)
    name = world["names"][0]
    outside = tmp_path / "outside"
    shutil.move(root / "takes" / name, outside)
    (root / "takes" / name).symlink_to(outside, target_is_directory=True)
    entries = read_index(world["index"])
    with pytest.raises(OutsideFolderError):
        load_takes(root, entries, world["index"])
    capsys.readouterr()
    assert _eval(world, root=root) == 2
    err = capsys.readouterr().err
    assert f"take '{name}'" in err and f"expected a path inside '{root.resolve()}'" in err
