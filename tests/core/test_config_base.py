"""Training configs that build on a base (issue 35): ``base = "other.toml"`` in a config, resolved by
``training.config.resolve_config_file``.

* Every shipped config resolves to exactly what it was before the configs were rewritten on bases:
  ``tests/fixtures/configs_resolved.json`` is ``json.loads(load_config(path).to_json())`` of every config under
  ``configs/``, taken from the whole-copy files (commit 0c28fc1, the before-picture). A config added later gets
  its entry the same way.
* Merging: tables key by key at every depth, any other value (arrays included) replaced; ``name`` never inherited.
* Refusals, each naming the config that names the base, what was expected and what was found: a cycle, a chain
  deeper than 16, a missing file, a base that is not a .toml / .json training config, a base that leads
  (``..`` or a link) out of the folder of the launched config and that folder's parent.
* A run records the resolved config: a run saved from a whole config resumes from a config written on a base.
"""

import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.training.checkpoints import load_checkpoint
from syn2seq_core.training.config import MAX_BASE_DEPTH, load_config, resolve_config_file, same_run

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").rglob("*.toml"))
SNAPSHOT = json.loads((REPO / "tests" / "fixtures" / "configs_resolved.json").read_text())
IDS = [p.relative_to(REPO).as_posix() for p in CONFIGS]


# --- the shipped configs -------------------------------------------------------------------------------------

def test_the_snapshot_holds_every_shipped_config():
    assert sorted(SNAPSHOT) == IDS, ("tests/fixtures/configs_resolved.json must name every config under configs/: "
                                     "add a new config's entry as json.loads(load_config(path).to_json())")


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_a_shipped_config_resolves_to_its_values_before_bases(path):
    rel = path.relative_to(REPO).as_posix()
    resolved = json.loads(load_config(path).to_json())
    assert resolved["name"] == SNAPSHOT[rel]["name"]
    assert resolved == SNAPSHOT[rel]
    # what a run saved from the whole-copy file records is the same run (resume, same_run)
    assert same_run(json.dumps(SNAPSHOT[rel]), load_config(path), rel)


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_a_config_on_a_base_says_so_first(path):
    raw = resolve_config_file(path)
    assert "base" not in raw
    base = tomllib.loads(path.read_text()).get("base")
    if base is None:
        assert not path.read_text().startswith("# Builds on")
        return
    named = (path.parent / base).resolve().relative_to(REPO).as_posix()
    assert path.read_text().splitlines()[0].startswith(f"# Builds on {named} "), path


def test_the_shipped_stages_build_on_the_stage_before():
    bases = {}
    for path in CONFIGS:
        base = tomllib.loads(path.read_text()).get("base")
        if base:
            bases[path.relative_to(REPO / "configs").as_posix()] = (path.parent / base).resolve().relative_to(
                REPO / "configs").as_posix()
    chain = ["synthetic_tiny.toml", "synthetic_tiny_refine.toml", "synthetic_tiny_cue.toml"] + [
        f"synthetic_tiny_cue{i}.toml" for i in range(2, 6)]
    for base, child in zip(chain, chain[1:]):
        assert bases[child] == base
    assert bases["ablation/ablation_a_direct.toml"] == "synthetic_tiny.toml"
    assert bases["ablation_full_noise/a_direct.toml"] == "ablation/ablation_a_direct.toml"
    assert bases["ablation_full_noise/c_syn2seq.toml"] == "synthetic_tiny.toml"
    assert bases["egoexo4d_finetune.toml"] == "egoexo4d_pretrain.toml"


# --- merging -------------------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_tables_merge_key_by_key_and_other_values_replace(tmp_path):
    write(tmp_path / "grand.toml", 'seed = 1\nmax_steps = 10\ninit_from = "a"\n'
          '[model]\npreset = "tiny"\ndim = 64\nextra = { inner = 1, keep = 2 }\n'
          '[data]\nsize = 32\nshards = ["x", "y"]\n[optim]\nbetas = [0.9, 0.99]\nlr = 1e-3\n')
    write(tmp_path / "parent.json", json.dumps({"base": "grand.toml", "seed": 2, "model": {"dim": 128},
                                                "data": {"supersample": 1}}))
    child = write(tmp_path / "child.toml", 'base = "parent.json"\nmax_steps = 20\n'
                  "[model]\nextra = { inner = 5 }\n[data]\nshards = [\"z\"]\n[optim]\nbetas = [0.8, 0.9]\n")
    assert resolve_config_file(child) == {
        "name": "child", "seed": 2, "max_steps": 20, "init_from": "a",
        "model": {"preset": "tiny", "dim": 128, "extra": {"inner": 5, "keep": 2}},
        "data": {"size": 32, "shards": ["z"], "supersample": 1},  # an array replaces the base's whole
        "optim": {"betas": [0.8, 0.9], "lr": 1e-3},
    }


def test_name_is_never_inherited(tmp_path):
    write(tmp_path / "base.toml", 'name = "the_base"\nseed = 1\n')
    assert resolve_config_file(write(tmp_path / "stage2.toml", 'base = "base.toml"\n'))["name"] == "stage2"
    named = write(tmp_path / "stage3.toml", 'base = "stage2.toml"\nname = "mine"\n')
    assert resolve_config_file(named)["name"] == "mine"
    assert resolve_config_file(tmp_path / "base.toml")["name"] == "the_base"


def test_a_shipped_stage_keeps_its_own_name():
    assert load_config(REPO / "configs" / "synthetic_tiny_cue2.toml").name == "synthetic_tiny_cue2"
    assert load_config(REPO / "configs" / "ablation_full_noise" / "a_direct.toml").name == \
        "ablation_full_noise_a_direct"


def test_a_table_cannot_replace_a_value_nor_a_value_a_table(tmp_path):
    write(tmp_path / "base.toml", "seed = 1\n[data]\nsize = 32\n")
    child = write(tmp_path / "child.toml", 'base = "base.toml"\ndata = 3\n')
    with pytest.raises(Syn2SeqInputError, match=r"child.toml' data: expected a table where its base has a table"
                                                r".*got int over dict"):
        resolve_config_file(child)


# --- refusals ------------------------------------------------------------------------------------------------

def refused(path, *patterns):
    with pytest.raises(Syn2SeqInputError) as e:
        load_config(path)
    for pattern in patterns:
        assert re.search(pattern, str(e.value)), str(e.value)
    return str(e.value)


def test_a_cycle_is_refused(tmp_path):
    write(tmp_path / "a.toml", 'base = "b.toml"\n')
    write(tmp_path / "b.toml", 'base = "a.toml"\n')
    refused(tmp_path / "a.toml", r"config '.*b.toml' base: expected a base that does not lead back",
            r"the cycle a.toml -> b.toml -> a.toml")
    refused(write(tmp_path / "self.toml", 'base = "self.toml"\n'), r"the cycle self.toml -> self.toml")


def test_a_chain_deeper_than_16_is_refused(tmp_path):
    write(tmp_path / "c0.toml", (REPO / "configs" / "synthetic_tiny_pretrain.toml").read_text())
    for i in range(1, MAX_BASE_DEPTH + 2):
        write(tmp_path / f"c{i}.toml", f'base = "c{i - 1}.toml"\nseed = {i}\n')
    assert load_config(tmp_path / f"c{MAX_BASE_DEPTH}.toml").seed == MAX_BASE_DEPTH  # 16 bases: fine
    refused(tmp_path / f"c{MAX_BASE_DEPTH + 1}.toml", r"c1.toml' base: expected at most 16 bases above the launched "
            r"config, got c17.toml -> c16.toml -> .* -> c1.toml -> c0.toml")


def test_a_missing_base_is_refused(tmp_path):
    refused(write(tmp_path / "a.toml", 'base = "nope.toml"\n'),
            r"config '.*a.toml' base: expected an existing config file .*got 'nope.toml', no file at")


@pytest.mark.parametrize("name, found", [("base.yaml", "'base.yaml'"), ("base", "'base'"), ("3", "3"),
                                         ("['a.toml']", r"\['a.toml'\]")])
def test_a_base_that_is_not_a_toml_or_json_file_name_is_refused(tmp_path, name, found):
    write(tmp_path / "base.yaml", "seed: 1\n")
    value = name if name[0] in "3[" else f'"{name}"'
    refused(write(tmp_path / "a.toml", f"base = {value}\n"),
            rf"a.toml' base: expected the name of a .toml or .json config file, got {found}")


@pytest.mark.parametrize("file, text, expected, found", [
    ("pyproject.toml", '[project]\nname = "x"\n', r"a training config \('.*pyproject.toml' with top-level keys "
     r"among \[", r"keys \['project'\]"),
    ("flat.toml", 'data = "x"\n', r"a training config \('.*flat.toml' with \[model\], \[data\], \[optim\], "
     r"\[lora\] as tables\)", r"values for \['data'\]"),
    ("bad.toml", "seed = = 1\n", r"valid TOML", ""),
    ("list.json", "[1, 2]", r"a JSON object of config keys", "list"),
])
def test_a_base_that_is_not_a_training_config_is_refused(tmp_path, file, text, expected, found):
    write(tmp_path / file, text)
    message = refused(write(tmp_path / "a.toml", f'base = "{file}"\n'), expected, found)
    assert file in message and "a.toml" in message


def test_a_base_may_lie_in_the_parent_folder_nothing_further_up(tmp_path):
    stages = tmp_path / "repo" / "configs"
    write(stages / "whole.toml", (REPO / "configs" / "synthetic_tiny.toml").read_text())
    write(stages / "ablation" / "x.toml", 'base = "../whole.toml"\n[data]\ntransition = "none"\n')
    write(stages / "other" / "y.toml", 'base = "../ablation/x.toml"\nseed = 9\n')
    assert load_config(stages / "ablation" / "x.toml").data.transition == "none"
    assert load_config(stages / "other" / "y.toml").seed == 9  # a sibling folder under the parent
    # the same file two folders up: refused, though it is a valid config
    write(tmp_path / "repo" / "whole.toml", (REPO / "configs" / "synthetic_tiny.toml").read_text())
    escape = write(stages / "ablation" / "z.toml", 'base = "../../whole.toml"\n')
    refused(escape, r"config '.*z.toml' base: expected a path inside '.*configs'",
            r"'../../whole.toml' \('..' leads out of the folder\)", r"nothing further up")
    absolute = write(stages / "ablation" / "abs.toml", f'base = "{(stages / "whole.toml").as_posix()}"\n')
    refused(absolute, r"abs.toml' base: expected a path inside", r"an absolute path")


def test_a_base_of_a_base_is_held_to_the_launched_configs_folder(tmp_path):
    # configs/x.toml may use ../outside.toml (configs' parent), but not when launched from configs/deep/
    write(tmp_path / "outside.toml", (REPO / "configs" / "synthetic_tiny.toml").read_text())
    mid = write(tmp_path / "configs" / "mid.toml", 'base = "../outside.toml"\n')
    assert load_config(mid).name == "mid"
    deep = write(tmp_path / "configs" / "deep" / "d.toml", 'base = "../mid.toml"\n')
    refused(deep, r"config '.*mid.toml' base: expected a path inside '.*configs'")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_link_out_of_the_folder_is_refused(tmp_path):
    secret = write(tmp_path / "elsewhere" / "secret.toml", (REPO / "configs" / "synthetic_tiny.toml").read_text())
    stages = tmp_path / "repo" / "configs"
    stages.mkdir(parents=True)
    (stages / "link.toml").symlink_to(secret)
    refused(write(stages / "ablation" / "a.toml", 'base = "../link.toml"\n'),
            r"a.toml' base: expected a path inside '.*configs'", r"a link leads out of the folder", "secret.toml")
    (stages / "linked_dir").symlink_to(tmp_path / "elsewhere")
    refused(write(stages / "ablation" / "b.toml", 'base = "../linked_dir/secret.toml"\n'),
            r"a link leads out of the folder")
    # a link that stays inside is followed as usual
    (stages / "inside.toml").symlink_to(write(stages / "whole.toml", secret.read_text()))
    assert load_config(write(stages / "ablation" / "c.toml", 'base = "../inside.toml"\n')).name == "c"


# --- what a run records --------------------------------------------------------------------------------------

def test_a_run_records_the_resolved_config_and_resumes_from_a_config_on_a_base(tmp_path):
    from syn2seq_core.training.loop import train

    from .test_train import write_config

    whole = write_config(tmp_path, steps=2, every=1)
    train(load_config(whole), tmp_path / "run", max_steps=1, progress=False)
    saved = json.loads(load_checkpoint(tmp_path / "run")["config"])
    assert "base" not in saved and saved == json.loads(load_config(whole).to_json())
    same = write(tmp_path / "stage" / "same.toml", 'base = "../tiny.toml"\nname = "tiny"\nlog_every = 2\n')
    changed = write(tmp_path / "stage" / "changed.toml", 'base = "../tiny.toml"\nname = "tiny"\n[optim]\nlr = 1e-4\n')
    with pytest.raises(Syn2SeqInputError, match="different config"):
        train(load_config(changed), tmp_path / "run", progress=False)
    assert train(load_config(same), tmp_path / "run", progress=False)["step"] == 2


# --- the docs ------------------------------------------------------------------------------------------------

def test_the_readme_example_is_the_shipped_config():
    text = (REPO / "README.md").read_text()
    m = re.search(r"\*\*Configs that build on another\*\*.*?```toml\n(?P<body>.*?)\n\s*```", text, re.S)
    assert m, "README.md: the paragraph on `base` with its ```toml example"
    shown = [ln.strip() for ln in m["body"].splitlines()]
    path = REPO / "configs" / "synthetic_tiny_cue2.toml"
    assert f"`{path.relative_to(REPO).as_posix()}`" in text[m.start():m.end()]
    assert shown == [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    # the launch line it quotes is the config's own (which test_train_launch runs)
    quoted = re.findall(r"`(syn2seq train --config [^`]*)`", text[m.end():m.end() + 600])
    assert quoted and all(f"# {line}" in path.read_text().splitlines() for line in quoted), quoted
