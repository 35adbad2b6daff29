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
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.io.safe_paths import OutsideFolderError

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


def test_eval_of_a_split_with_one_take(world):
    """Issue 28: a split with a single take is scored as larger splits are, its means reported without CI and
    marked so (JSON and tables)."""
    out = world["base"] / "train.json"
    assert _eval(world, "--split", "train", "--out", str(out)) == 0
    data = json.loads(out.read_text())
    assert [t["take"] for t in data["per_take"]] == [world["names"][2]] and data["summary"]["takes"] == 1
    assert "no confidence interval" in data["summary"]["ci"]
    sample = data["summary"]["methods"]["sample"]["psnr"]
    assert sample["mean"] > 0 and sample["ci_low"] == "nan"
    md = out.with_suffix(".md").read_text()
    assert f"| all | sample | 1 | {sample['mean']:.2f}† |" in md and "† one take" in md


def test_documented_command_scores_another_system_on_a_split_and_category(tmp_path, capsys):
    """docs/evaluation.md, "Scoring another system on Ego-Exo4D", scaled down: a procedural release in the Ego-Exo4D
    layout (render-synthetic --layout egoexo4d), its index, another system's folder of videos named after the takes,
    then eval with --split, --category and --no-model: the paper's layout (methods x metrics per category)."""
    from syn2seq_core.io.video import write_video

    release, index, videos = tmp_path / "release", tmp_path / "index.jsonl", tmp_path / "egox"
    assert main(["render-synthetic", "--layout", "egoexo4d", "--out", str(release), "--takes", "9", "--size", "32",
                 "--exo-frames", "4", "--ego-frames", "4", "--supersample", "1"]) == 0
    takes_file = release / "takes.json"  # the renderer has one scenario: give the takes of each split two
    takes = json.loads(takes_file.read_text())
    split_of = json.loads((release / "annotations" / "splits.json").read_text())["take_uid_to_split"]
    seen: dict = {}
    for take in takes:
        n = seen[split_of[take["take_uid"]]] = seen.get(split_of[take["take_uid"]], 0) + 1
        take["parent_task_name"] = "Cooking" if n <= 2 else "Bike Repair"
    takes_file.write_text(json.dumps(takes))
    assert main(["index-egoexo4d", str(release), "--out", str(index)]) == 0
    entries = select(read_index(index), "val")
    chosen = [e for e in entries if e.category == "Cooking"]
    assert len(chosen) >= 2 and len(chosen) < len(entries)
    # "EgoX": each take's ego view as the loader presents it, slightly darkened, one video per take
    for take in load_takes(release, chosen, index):
        frames = take.read_view("ego")[0]
        write_video(videos / f"{take.name}.mp4", frames * 0.9, fps=take.fps)
    out = tmp_path / "reports" / "egox.json"
    assert main(["eval", "--index", str(index), "--takes", str(release), "--split", "val", "--category", "Cooking",
                 "--no-model", "--videos", f"egox={videos}", "--eval-size", "64", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [t["take"] for t in data["per_take"]] == [e.take for e in chosen]
    assert data["category"] == ["Cooking"] and data["split"] == "val" and data["model"] is None
    assert set(data["summary"]["methods"]) == {"copy_last", "flat_color", "egox"}
    assert data["summary"]["methods"]["egox"]["psnr"]["mean"] > data["summary"]["methods"]["copy_last"]["psnr"]["mean"]
    paper = [line for line in out.with_name("egox_by_category.md").read_text().splitlines() if line.startswith("|")]
    assert paper[0].startswith(f"| method | Cooking ({len(chosen)}) PSNR (dB) | Cooking ({len(chosen)}) SSIM")
    assert [line.split(" | ")[0] for line in paper[2:]] == ["| copy_last", "| flat_color", "| egox"]
    tex = out.with_name("egox_by_category.tex").read_text()
    assert r"\multicolumn{2}{c}{Cooking}" in tex and r"\multicolumn{2}{c}{All}" in tex
    capsys.readouterr()
    assert main(["eval", "--index", str(index), "--takes", str(release), "--split", "val", "--category", "Cycling",
                 "--no-model", "--videos", f"egox={videos}"]) == 2
    assert "--category: expected one of ['Bike Repair', 'Cooking']" in capsys.readouterr().err
