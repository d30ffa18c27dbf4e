from pathlib import Path

import pytest
import yaml

from semlib.params import PRESETS, load_params, notebook_parameters
from semlib.zoo import ZooSpec, load_spec

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def test_there_are_notebooks():
    assert {nb.stem for nb in NOTEBOOKS} >= {"00_data", "01_zoo"}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_params_key_is_a_notebook_parameter(nb, preset):
    allowed = notebook_parameters(nb)
    assert "PRESET" in allowed
    params = yaml.safe_load((ROOT / "params" / nb.stem / f"{preset}.yaml").read_text()) or {}
    assert set(params) <= set(allowed), f"keys not in {nb.name}'s parameters cell: {set(params) - set(allowed)}"
    assert load_params(nb.stem, preset, ROOT) == params


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_upper_case_and_notebooks_define_nothing(nb):
    import json

    assert all(k.isupper() for k in notebook_parameters(nb))
    for cell in json.loads(nb.read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert "def " not in src and "class " not in src, "notebooks only call semlib"


@pytest.mark.parametrize("preset", PRESETS)
def test_zoo_specs_parse(preset):
    spec = load_spec(preset, ROOT)
    assert spec.name == preset
    families = {s.family for s in spec.submodels()}
    assert len(families) == 9, "every preset keeps every Table-1 family"


def test_misspelled_params_key_is_refused(tmp_path):
    (tmp_path / "params" / "01_zoo").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_zoo.ipynb").write_text((ROOT / "notebooks" / "01_zoo.ipynb").read_text())
    (tmp_path / "params" / "01_zoo" / "smoke.yaml").write_text("THRESHHOLD: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['THRESHHOLD'\]"):
        load_params("01_zoo", "smoke", tmp_path)
    (tmp_path / "params" / "01_zoo" / "smoke.yaml").write_text("ZOO: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_params("01_zoo", "smoke", tmp_path)
    with pytest.raises(FileNotFoundError, match="presets for 01_zoo"):
        load_params("01_zoo", "laptp", tmp_path)


def test_zoo_spec_not_yaml(tmp_path):
    p = tmp_path / "z.yaml"
    p.write_text("name: [x\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        ZooSpec.from_yaml(p)


@pytest.mark.parametrize("text, msg", [
    ("THRESHOLD: 20\n", "THRESHOLD = 20 is not allowed; expected a fraction in [0, 1]"),
    ("THRESHOLD: yes\n", "THRESHOLD = True is not allowed"),
    ("RETRAIN: 1\n", "RETRAIN = 1 is not allowed; expected true or false"),
    ("ZOO: 3\n", "ZOO = 3 is not allowed"),
])
def test_bad_params_values_are_refused(tmp_path, text, msg):
    (tmp_path / "params" / "01_zoo").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_zoo.ipynb").write_text((ROOT / "notebooks" / "01_zoo.ipynb").read_text())
    (tmp_path / "params" / "01_zoo" / "smoke.yaml").write_text(text)
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_params("01_zoo", "smoke", tmp_path)


def test_every_parameter_default_obeys_its_rule():
    from semlib.params import RULES, check_values

    for nb in NOTEBOOKS:
        defaults = notebook_parameters(nb)
        check_values(defaults, nb.name)
        assert set(defaults) <= set(RULES), f"{nb.name}: parameters without a value rule"
