"""Tampered cards and caches are noticed (issue: "trusts nothing it reads")."""
from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd
import pytest

from semlib import artifacts
from semlib.cache import cache_key, cached, finished
from semlib.zoo import SubModelSpec, load_submodel

SUB = SubModelSpec("resnet18", 0.25, width=0.0625, depth=0.5, stem_stride=2)


@pytest.fixture
def zoo_dir(tmp_path):
    artifacts.save_checkpoint(SUB.build(), tmp_path / f"{SUB.name}.safetensors",
                       {"name": SUB.name, "submodel": asdict(SUB), "sigma": SUB.sigma})
    return tmp_path


def _edit_card(zoo_dir, **changes):
    path = zoo_dir / f"{SUB.name}.json"
    card = json.loads(path.read_text())
    card["submodel"].update(changes)
    path.write_text(json.dumps(card))
    return card


def _refused(zoo_dir, needle: str) -> None:
    """Loading the sub-model against its spec fails with one line holding ``needle``."""
    with pytest.raises(artifacts.CheckpointError) as e:
        load_submodel(zoo_dir, SUB.name, expected=SUB)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_card_matching_its_spec_loads(zoo_dir):
    model = load_submodel(zoo_dir, SUB.name, expected=SUB)
    assert model.sigma == 0.25


@pytest.mark.parametrize("changes", [{"sigma": 0.5}, {"width": 0.125}, {"arch": "vgg11"},
                                     {"noise_space": "normalized"}])
def test_an_edited_card_is_refused_against_its_spec(zoo_dir, changes):
    before = artifacts.card_fingerprint(artifacts.read_card(zoo_dir / f"{SUB.name}.safetensors"))
    _edit_card(zoo_dir, **changes)
    card = artifacts.read_card(zoo_dir / f"{SUB.name}.safetensors")
    assert artifacts.card_fingerprint(card) != before  # a curve's key changes with the card
    _refused(zoo_dir, "zoo spec asks for")


def test_fingerprint_ignores_what_does_not_shape_the_model(zoo_dir):
    path = zoo_dir / f"{SUB.name}.json"
    card = json.loads(path.read_text())
    before = artifacts.card_fingerprint(card)
    card["train_seconds"] = 123.0  # bookkeeping, not behaviour
    assert artifacts.card_fingerprint(card) == before
    card["sha256"] = "0" * 64
    assert artifacts.card_fingerprint(card) != before


@pytest.mark.parametrize("text", ["[1, 2]", '"card"', "{}", '{"sha256": 5}', "null"])
def test_a_card_of_the_wrong_shape_is_one_clear_error(zoo_dir, text):
    (zoo_dir / f"{SUB.name}.json").write_text(text)
    _refused(zoo_dir, "not a checkpoint card")


def test_a_card_without_its_submodel_is_one_clear_error(zoo_dir):
    path = zoo_dir / f"{SUB.name}.json"
    card = json.loads(path.read_text())
    card["submodel"] = {"arch": "resnet18"}  # sigma missing
    path.write_text(json.dumps(card))
    with pytest.raises(artifacts.CheckpointError, match="no valid 'submodel' entry"):
        load_submodel(zoo_dir, SUB.name)


def _compute_counter():
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"d": [0.1, 0.2]})
    return calls, compute


def test_a_manifest_of_another_configuration_is_not_used(tmp_path):
    calls, compute = _compute_counter()
    a, b = {"attack": "bim", "eps0": 0.1}, {"attack": "bim", "eps0": 0.2}
    cached(a, compute, tmp_path)
    # the files of configuration a, copied under b's key: hashes match, configuration does not
    for ext in ("csv", "json"):
        (tmp_path / f"{cache_key(b)}.{ext}").write_bytes((tmp_path / f"{cache_key(a)}.{ext}").read_bytes())
    assert not finished(b, tmp_path)
    cached(b, compute, tmp_path)
    assert len(calls) == 2
    assert json.loads((tmp_path / f"{cache_key(b)}.json").read_text())["config"] == b
    assert finished(a, tmp_path) and finished(b, tmp_path)


@pytest.mark.parametrize("text", ["[1]", "{}", '{"sha256": 1, "config": {}}', "\u00ff", '"x"'])
def test_a_manifest_of_the_wrong_shape_reads_as_unfinished(tmp_path, text):
    calls, compute = _compute_counter()
    cfg = {"attack": "pgd"}
    cached(cfg, compute, tmp_path)
    (tmp_path / f"{cache_key(cfg)}.json").write_text(text)
    assert not finished(cfg, tmp_path)
    cached(cfg, compute, tmp_path)
    assert len(calls) == 2 and finished(cfg, tmp_path)


def _laptop_copy(tmp_path):
    """The shipped laptop zoo under tmp_path: weights linked, cards copied (so they can be edited)."""
    from semlib.zoo import default_dir

    src = default_dir("laptop")
    for sub in ("", "baselines"):
        (tmp_path / sub).mkdir(exist_ok=True)
        for p in (src / sub).glob("*.safetensors"):
            (tmp_path / sub / p.name).symlink_to(p)
            (tmp_path / sub / p.with_suffix(".json").name).write_text(p.with_suffix(".json").read_text())
    return tmp_path


def test_an_edited_baseline_card_is_refused(tmp_path):
    from semlib.baselines import load_baseline
    from semlib.zoo import load_spec

    zoo_dir, spec = _laptop_copy(tmp_path), load_spec("laptop")
    load_baseline("rse", spec, zoo_dir)  # as shipped: loads
    card_file = zoo_dir / "baselines" / "rse.json"
    card = json.loads(card_file.read_text())
    card["recipe"]["spec"]["rse"]["inner_sigma"] = 0.0
    card_file.write_text(json.dumps(card))
    with pytest.raises(artifacts.CheckpointError, match="records another recipe"):
        load_baseline("rse", spec, zoo_dir)


def test_the_study_refuses_a_laptop_card_whose_sigma_was_edited(tmp_path, data_dir):
    from semlib.study import Study, StudyConfig

    zoo_dir = _laptop_copy(tmp_path)
    name = "resnet18_s0.25"
    card_file = zoo_dir / f"{name}.json"
    card = json.loads(card_file.read_text())
    card["submodel"]["sigma"] = 0.75
    card_file.write_text(json.dumps(card))
    study = Study("laptop", StudyConfig(), zoo_dir=zoo_dir, data_dir=data_dir, cache_dir=tmp_path / "c")
    with pytest.raises(artifacts.CheckpointError, match="zoo spec asks for"):
        study.submodel(name)


def test_checkpoints_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        artifacts.save_checkpoint(SUB.build(), tmp_path / "m.safetensors", {"name": "m"})
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
