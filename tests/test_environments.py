"""environment.yml (conda users) and binder/ (mybinder.org) parse and ask for the packages
pyproject.toml declares, at versions its specifiers allow."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, Requirement]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["test"]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def _conda_env() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "semlib" and env["channels"] == ["conda-forge"]
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            name, _, version = dep.partition("=")
            conda[name.lower()] = version
    return conda, pip


def test_environment_yml_pins_every_dependency_within_pyproject():
    required = _pyproject()
    conda, pip = _conda_env()
    pip_reqs = {Requirement(p).name.lower(): Requirement(p) for p in pip if not p.startswith(("-", "."))}
    assert conda.pop("python").startswith("3.11") and "pip" in conda
    conda.pop("pip")
    declared = set(conda) | set(pip_reqs)
    assert declared == set(required), f"missing {set(required) - declared}, extra {declared - set(required)}"
    for name, version in conda.items():
        assert version and required[name].specifier.contains(version), f"{name}={version} vs {required[name]}"
    for name, req in pip_reqs.items():
        assert str(req.specifier) == str(required[name].specifier), f"{name}: {req} vs {required[name]}"
    assert "-e ." in pip, "the project itself, installed from the checkout"
    assert any("download.pytorch.org/whl/cpu" in p for p in pip), "CPU-only torch"


def test_binder_installs_the_project_and_builds_the_smoke_zoo():
    reqs = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert "-e ." in reqs  # pyproject's dependencies, exactly
    torch = [Requirement(r) for r in reqs if r.startswith("torch")]
    assert [str(t) for t in torch] == [str(_pyproject()["torch"])]
    post = (ROOT / "binder" / "postBuild").read_text()
    assert post.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in post
    assert re.search(r"--preset smoke .*01_zoo", post), "postBuild runs the smoke zoo"
    start = (ROOT / "binder" / "start").read_text()
    assert "SEMLIB_DATA" in start and start.rstrip().endswith('exec "$@"')


@pytest.mark.parametrize("path", ["binder/postBuild", "binder/start"])
def test_binder_scripts_are_executable(path):
    assert (ROOT / path).stat().st_mode & 0o111
