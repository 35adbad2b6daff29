"""`syn2seq eval` as papers report it: takes by index with categories and splits, per-category tables (CSV,
Markdown, LaTeX), plots, and other systems' videos scored in the same harness."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from syn2seq_core.cli import main
from syn2seq_core.data.index import read_index, select
from syn2seq_core.data.synthetic import SyntheticConfig, render_take
from syn2seq_core.data.takes import load_take, write_take
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.evaluation.run import frame_curves, summarize_categories
from syn2seq_core.evaluation.reports import latex_escape, table_rows, to_latex, to_markdown
from syn2seq_core.io.video import read_video, write_video

from .test_pipeline import DATA, MODEL, write_random_model

CATEGORIES = {"take_0": "Cooking", "take_1": "Cooking", "take_2": "Bike", "take_3": "Bike"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    takes = root / "takes"
    cfg = SyntheticConfig(size=32, supersample=1, exo_frames=3, ego_frames=4)
    for i, name in enumerate(CATEGORIES):
        t = render_take(2000 + i, cfg)
        write_take(takes / name, t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras, fps=8,
                   meta={"category": "from take.json"} if i == 0 else None)
    index = root / "index.csv"
    index.write_text("take,category,split\n" + "".join(f"{n},{c},test\n" for n, c in CATEGORIES.items())
                     + "take_9,Bike,train\n", encoding="utf-8")
    # "Another system": each take's ground truth with noise, as its own folder of videos named after the takes.
    other = root / "other_system"
    g = torch.Generator().manual_seed(0)
    for name in CATEGORIES:
        frames = read_video(takes / name / "ego.mp4")
        noisy = (frames + 0.05 * torch.randn(frames.shape, generator=g)).clamp(0, 1)
        write_video(other / f"{name}.mp4", noisy, fps=8)
    model = write_random_model(root / "model.safetensors", MODEL, DATA)
    return {"root": root, "takes": takes, "index": index, "other": other, "model": model}


@pytest.fixture(scope="module")
def report(world):
    out = world["root"] / "report" / "eval.json"
    out.parent.mkdir()
    code = main(["eval", "--takes", str(world["takes"]), "--model", str(world["model"]), "--steps", "1",
                 "--index", str(world["index"]), "--split", "test", "--videos", f"other={world['other']}",
                 "--out", str(out)])
    assert code == 0
    return out


def test_index_reads_csv_and_json_and_refuses_bad_entries(tmp_path):
    csv_index = tmp_path / "i.csv"
    csv_index.write_text("take,category,split\na,Cooking,test\nb,,train\n", encoding="utf-8")
    entries = read_index(csv_index)
    assert [(e.take, e.category, e.split) for e in entries] == [("a", "Cooking", "test"), ("b", None, "train")]
    assert [e.take for e in select(entries, "test")] == ["a"]
    with pytest.raises(Syn2SeqInputError, match=r"--split.*\['test', 'train'\].*'val'"):
        select(entries, "val")
    json_index = tmp_path / "i.json"
    json_index.write_text(json.dumps({"takes": [{"take": "a", "category": "Bike"}]}), encoding="utf-8")
    assert read_index(json_index)[0].category == "Bike"
    for text, match in (("name,category\na,b\n", "'take' column"), ("take,colour\na,red\n", "unknown"),
                        ("take\na\na\n", "each take once"), ("take,category\na," + "x" * 70 + "\n", "1 to 64")):
        csv_index.write_text(text, encoding="utf-8")
        with pytest.raises(Syn2SeqInputError, match=match):
            read_index(csv_index)


def test_take_json_category_is_read_and_checked(world, tmp_path):
    assert load_take(world["takes"] / "take_0").category == "from take.json"
    assert load_take(world["takes"] / "take_1").category is None
    bad = tmp_path / "bad"
    t = render_take(1, SyntheticConfig(size=16, supersample=1, exo_frames=2, ego_frames=2))
    write_take(bad, t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras, fps=8)
    doc = json.loads((bad / "take.json").read_text())
    (bad / "take.json").write_text(json.dumps({**doc, "category": 7}))
    with pytest.raises(Syn2SeqInputError, match="category"):
        load_take(bad)


def test_eval_reports_every_metric_per_category_and_overall(report):
    data = json.loads(report.read_text())
    assert data["summary"]["takes"] == 4  # the test split; take_9 (train) is not a take folder and not read
    assert sorted(data["categories"]) == ["Bike", "Cooking"]  # the index wins over take_0's take.json
    assert all(part["takes"] == 2 for part in data["categories"].values())
    methods = set(data["summary"]["methods"])
    assert {"sample", "copy_last", "flat_color", "other"} <= methods
    assert {t["category"] for t in data["per_take"]} == {"Bike", "Cooking"}
    # The per-category means are the means of their takes' per-take means.
    cooking = [t for t in data["per_take"] if t["category"] == "Cooking"]
    mean = sum(t["methods"]["sample"]["psnr"]["mean"] for t in cooking) / 2
    assert data["categories"]["Cooking"]["methods"]["sample"]["psnr"]["mean"] == pytest.approx(mean)
    # The other system (ground truth plus noise) beats every trivial baseline.
    psnr = {m: e["psnr"]["mean"] for m, e in data["summary"]["methods"].items()}
    assert psnr["other"] > max(psnr["copy_last"], psnr["flat_color"]) + 5


def test_eval_writes_tables_for_papers(report):
    rows = list(csv.DictReader(report.with_suffix(".csv").read_text().splitlines()))
    assert [(r["category"], r["method"]) for r in rows][:1] == [("all", "sample")]
    assert {r["category"] for r in rows} == {"all", "Bike", "Cooking"}
    assert all(r["lpips_alex"].startswith("unavailable") for r in rows)  # no weights given: never a number
    assert float(rows[0]["psnr_ci_low"]) <= float(rows[0]["psnr"]) <= float(rows[0]["psnr_ci_high"])
    md = report.with_suffix(".md").read_text()
    assert "| category | method | takes | PSNR (dB) | SSIM |" in md and "| Bike | other | 2 |" in md
    tex = report.with_suffix(".tex").read_text()
    assert r"\begin{tabular}" in tex and r"\bottomrule" in tex and r"copy\_last" in tex and r"$\pm$" in tex


def test_eval_writes_plots(report):
    pytest.importorskip("matplotlib")
    for suffix in ("_frames.png", "_examples.png"):
        png = report.with_name(report.stem + suffix)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_frame_curves_follow_the_generated_view():
    from syn2seq_core.evaluation.run import TakeScores

    def take(values, category):
        report = {"psnr": {"per_frame": values, "mean": sum(values) / len(values)},
                  "ssim": {"per_frame": values, "mean": sum(values) / len(values)}}
        return TakeScores(f"t{len(values)}{category}", {"sample": report}, {}, {}, category)

    scores = [take([30.0, 20.0, 10.0], "a"), take([32.0, 22.0], "b")]
    curve = frame_curves(scores)["sample"]["psnr"]
    assert curve["index"] == [0, 1, 2] and curve["mean"] == [31.0, 21.0, 10.0] and curve["n"] == [2, 2, 1]
    summaries = summarize_categories(scores)
    rows = table_rows(summaries)
    assert [r["category"] for r in rows] == ["all", "a", "b"]
    md = to_markdown(rows)
    assert "| a | sample | 1 | 20.00† |" in md and "† one take" in md  # one take: a mean without a CI, marked


def test_latex_escapes_names():
    assert latex_escape("a_b & 50% #1") == r"a\_b \& 50\% \#1"
    rows = [{"category": "C&D", "method": "m_1", "takes": 2, "psnr": 20.0, "psnr_ci_low": 19.0, "psnr_ci_high": 21.0}]
    assert r"C\&D & m\_1 & 2 & 20.00 $\pm$ 1.00 \\" in to_latex(rows)


def test_foreign_videos_are_matched_by_take_name_and_checked(world, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["eval", "--takes", str(world["takes"]), "--model", str(world["model"]), "--steps", "1"]
    assert main(base + ["--videos", f"x={empty}"]) == 2
    assert main(base + ["--videos", "sample=" + str(world["other"])]) == 2  # a built-in method's label
    short = tmp_path / "short"
    for name in CATEGORIES:
        write_video(short / f"{name}.mp4", torch.rand(2, 3, 32, 32), fps=8)  # 2 of 4 frames
    assert main(base + ["--videos", f"short={short}"]) == 2
    assert main(base + ["--split", "test"]) == 2  # a split needs an index


def test_eval_scores_lpips_with_one_weights_file_per_network(world, tmp_path, capsys):
    from .test_lpips import save_weights

    alex, vgg = save_weights(tmp_path, "alex"), save_weights(tmp_path, "vgg")
    out = tmp_path / "lpips.json"
    base = ["eval", "--takes", str(world["takes"]), "--model", str(world["model"]), "--steps", "1", "--limit", "2",
            "--no-baselines"]
    assert main(base + ["--lpips-weights", str(vgg), "--lpips-weights", str(alex), "--out", str(out)]) == 0
    methods = json.loads(out.read_text())["summary"]["methods"]["sample"]
    assert isinstance(methods["lpips_vgg"], dict) and methods["lpips_vgg"]["mean"] > 0
    assert "unavailable" in methods["lpips_alex"] and "31x31" in methods["lpips_alex"]  # 16x16 frames
    capsys.readouterr()
    assert main(base + ["--lpips-weights", str(vgg), "--lpips-weights", str(vgg)]) == 2
    assert "one file per network" in capsys.readouterr().err


def test_fvd_compares_each_method_s_clips_with_the_ground_truth_clips():
    from syn2seq_core.evaluation.run import TakeScores, summarize
    from syn2seq_core.metrics.fvd import fvd_entry

    g = torch.Generator().manual_seed(0)
    report = {"psnr": {"per_frame": [20.0], "mean": 20.0}, "ssim": {"per_frame": [0.5], "mean": 0.5}}
    feats = [{"sample": torch.randn(400, generator=g, dtype=torch.float64) + 1,
              "target": torch.randn(400, generator=g, dtype=torch.float64)} for _ in range(6)]
    scores = [TakeScores(f"t{i}", {"sample": report}, {}, {}, None, {}, f) for i, f in enumerate(feats)]
    entry = summarize(scores)["methods"]["sample"]["fvd"]
    expected = fvd_entry(torch.stack([f["sample"] for f in feats]), torch.stack([f["target"] for f in feats]))
    assert entry["mean"] == pytest.approx(expected["fvd"]) and entry["n"] == 6 and entry["stable"] is False
    no_i3d = summarize([TakeScores("a", {"sample": report}, {}, {}), TakeScores("b", {"sample": report}, {}, {})])
    assert no_i3d["methods"]["sample"]["fvd"].startswith("unavailable: no I3D weights given")


def test_eval_with_an_i3d_says_why_short_clips_get_no_fvd(world, tmp_path):
    from safetensors.torch import save_file

    from syn2seq_core.metrics.fvd import I3D, I3DConfig

    i3d = tmp_path / "i3d.safetensors"
    save_file({k: v.contiguous() for k, v in I3D(I3DConfig()).state_dict().items()}, str(i3d))
    out = tmp_path / "fvd.json"
    base = ["eval", "--takes", str(world["takes"]), "--model", str(world["model"]), "--steps", "1", "--limit", "2",
            "--no-baselines"]
    assert main(base + ["--i3d", str(i3d), "--out", str(out)]) == 0
    fvd = json.loads(out.read_text())["summary"]["methods"]["sample"]["fvd"]
    assert fvd.startswith("unavailable:") and "at least 9" in fvd  # the takes' ego views have 4 frames
    assert main(base + ["--i3d", str(tmp_path / "missing.pt")]) == 2
