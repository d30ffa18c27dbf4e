import time
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
    shared = yaml.safe_load((ROOT / "params" / f"{preset}.yaml").read_text())
    assert set(params) <= set(allowed), f"keys not in {nb.name}'s parameters cell: {set(params) - set(allowed)}"
    assert not set(params) & set(shared), "a shared setting repeated in a notebook's file"
    assert load_params(nb.stem, preset, ROOT) == {**{k: v for k, v in shared.items() if k in allowed}, **params}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_notebook_of_a_preset_sees_the_same_study(preset):
    """One STUDY block per preset: every notebook that takes STUDY gets that very block."""
    shared = yaml.safe_load((ROOT / "params" / f"{preset}.yaml").read_text())
    seen = [load_params(nb.stem, preset, ROOT).get("STUDY") for nb in NOTEBOOKS if "STUDY" in notebook_parameters(nb)]
    assert len(seen) >= 6 and all(s == shared["STUDY"] for s in seen)


def test_a_setting_in_both_files_is_refused(tmp_path):
    (tmp_path / "params" / "01_zoo").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_zoo.ipynb").write_text((ROOT / "notebooks" / "01_zoo.ipynb").read_text())
    (tmp_path / "params" / "smoke.yaml").write_text("ZOO: smoke\nTHRESHOLD: 0.1\n")
    (tmp_path / "params" / "01_zoo" / "smoke.yaml").write_text("THRESHOLD: 0.3\n")
    with pytest.raises(ValueError, match=r"\['THRESHOLD'\] also set in .*smoke.yaml; a setting lives in one place"):
        load_params("01_zoo", "smoke", tmp_path)
    (tmp_path / "params" / "01_zoo" / "smoke.yaml").write_text("")
    assert load_params("01_zoo", "smoke", tmp_path)["THRESHOLD"] == 0.1


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_upper_case_and_notebooks_define_nothing(nb):
    import json

    assert all(k.isupper() for k in notebook_parameters(nb))
    for cell in json.loads(nb.read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert "def " not in src and "class " not in src, "notebooks only call semlib"


MAX_CELL_LINES = 12  # a notebook cell calls semlib and shows the result; logic lives in semlib


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_cells_stay_thin(nb):
    """Thin notebooks: short code cells, no control flow beyond a display loop, and a study made
    by the one-line ``Study.from_params`` (never assembled by hand in a setup cell)."""
    import ast
    import json

    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        src = "".join(cell["source"])
        assert len(src.strip().splitlines()) <= MAX_CELL_LINES, f"a cell of {nb.name} has over {MAX_CELL_LINES} lines"
        tree = ast.parse(src)
        assert not any(isinstance(n, (ast.While, ast.Try, ast.With, ast.Lambda)) for n in ast.walk(tree)), nb.name
        assert sum(isinstance(n, (ast.For, ast.If)) for n in ast.walk(tree)) <= 2, f"control flow in {nb.name}"
        calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert "Study" not in calls, f"{nb.name} builds its Study by hand; use Study.from_params(PARAMS)"


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


def _project(tmp_path, notebook, text):
    """A project with one notebook and its smoke params file holding ``text``."""
    (tmp_path / "params" / notebook).mkdir(parents=True, exist_ok=True)
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "notebooks" / f"{notebook}.ipynb").write_text((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    path = tmp_path / "params" / notebook / "smoke.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("notebook, text, msg", [
    ("03_whitebox_transfer", "EPS_ZOOM: .inf\n", "EPS_ZOOM = inf is not allowed; expected a finite number > 0"),
    ("03_whitebox_transfer", "EPS_ZOOM: .nan\n", "EPS_ZOOM = nan is not allowed"),
    ("03_whitebox_transfer", "EPS_ZOOM: -.inf\n", "EPS_ZOOM = -inf is not allowed"),
    ("03_whitebox_transfer", "EPS_ZOOM: 0.2\n", "EPS_ZOOM = 0.2 is above STUDY eps_max = 0.1"),
    ("03_whitebox_transfer", "EPS_ZOOM: '0.1'\n", "EPS_ZOOM = '0.1' is not allowed; expected a finite number > 0 (pixels in "
                                                  "[0, 1]); '0.1' is text: write 0.1 without quotes"),
    ("03_whitebox_transfer", "EPS_ZOOM: 1e-1\n", "'1e-1' is text to YAML (an exponent needs a dot, 1.0e-2): write 0.1"),
    ("07_claims", "N_BOOT: '2000'\n", "N_BOOT = '2000' is not allowed; expected an integer >= 100; '2000' is text: write 2000"),
    ("07_claims", "1: 2\n", "parameter names must be text (NAME: value), got [1]"),
    ("03_whitebox_transfer", "STUDY: {eps0: .inf}\n", "STUDY eps0 = inf is not allowed; expected a finite number"),
    ("03_whitebox_transfer", "STUDY: {eps_max: .nan}\n", "STUDY eps_max = nan is not allowed"),
    ("03_whitebox_transfer", "STUDY: {eps0: 0.5}\n", "STUDY eps0 = 0.5 is above eps_max = 0.1"),
    ("03_whitebox_transfer", "STUDY: {judge_n: '20'}\n", "STUDY judge_n = '20' is not allowed; expected an integer"),
    ("03_whitebox_transfer", "EPS_ZOOM: 0.5\n", "EPS_ZOOM = 0.5 is above STUDY eps_max = 0.1"),
    ("03_whitebox_transfer", "EPS_ZOOM: .inf\n", "EPS_ZOOM = inf is not allowed"),
    ("06_certify_sem", "CERT: {sigma: .inf, n0: 2, n: 8, alpha: 0.01}\n", "CERT = {'sigma': inf"),
    ("06_certify_sem", "CERT: {sigma: .nan, n0: 2, n: 8, alpha: 0.01}\n", "CERT = {'sigma': nan"),
    ("06_certify_sem", "CERT: {sigma: -0.25, n0: 2, n: 8, alpha: 0.01}\n", "CERT = {'sigma': -0.25"),
    ("06_certify_sem", "CERT: {sigma: '0.25', n0: 2, n: 8, alpha: 0.01}\n", "CERT = {'sigma': '0.25'"),
    ("01_zoo", "THRESHOLD: '0.2'\n", "THRESHOLD = '0.2' is not allowed; expected a fraction in [0, 1]; '0.2' is text"),
    ("01_zoo", "a: &a [1, *a]\n", "is a recursive YAML document"),
    ("08_explore", "GRID: {k_ranges: [[3, 1]], sigma_sets: [], attacks: [bim], goals: [untargeted]}\n",
     "GRID = {'k_ranges': [[3, 1]]"),
    ("08_explore", "GRID: {k_ranges: [], sigma_sets: [[]], attacks: [bim], goals: [untargeted]}\n", "GRID = "),
    ("08_explore", "GRID: {k_ranges: [], sigma_sets: [], attacks: [apgd], goals: [untargeted]}\n",
     "attacks (some of bim, mim, pgd, nes, spsa)"),
    ("08_explore", "GALLERY: {images: -1, curves: [[A, bim, untargeted]]}\n", "GALLERY = {'images': -1"),
    ("08_explore", "GALLERY: {images: 2, curves: [[A, bim, untargeted], [A, mim, untargeted]]}\n",
     "one per scenario"),
])
def test_bad_values_are_refused_naming_key_and_file(tmp_path, notebook, text, msg):
    path = _project(tmp_path, notebook, text)
    with pytest.raises(ValueError) as info:
        load_params(notebook, "smoke", tmp_path)
    text = str(info.value)
    assert msg in text and str(path) in text, text
    assert "\n" not in text


def test_yaml_alias_bomb_fails_fast_in_one_line(tmp_path):
    """Billion laughs: 9 levels of 9 aliases (9^9 leaves if expanded) is refused while parsing."""
    levels = "abcdefghi"
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip(levels, levels[1:]))
    path = _project(tmp_path, "01_zoo", bomb)
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        load_params("01_zoo", "smoke", tmp_path)
    assert time.perf_counter() - start < 0.5
    assert str(info.value) == f"{path} uses more than 32 YAML aliases (*name); write the values out"


def test_a_few_aliases_are_fine_but_a_wide_expansion_is_not(tmp_path):
    from semlib.params import load_yaml

    ok = tmp_path / "ok.yaml"
    ok.write_text("s: &s {n_images: 4}\nt: *s\n")
    assert load_yaml(ok) == {"s": {"n_images": 4}, "t": {"n_images": 4}}
    wide = tmp_path / "wide.yaml"  # 26 aliases, under the cap, but 20 * 6 copies of 1000 items
    row = "[" + ", ".join(["x"] * 1000) + "]"
    wide.write_text(f"a: &a {row}\nb: &b [{', '.join(['*a'] * 20)}]\nc: [{', '.join(['*b'] * 6)}]\n")
    with pytest.raises(ValueError, match="expands to more than 100000 YAML nodes"):
        load_yaml(wide)
