"""Set-up files agree with each other: README commands, .ci/run, pyproject, environment.yml."""
from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO

CONDA_NAMES = {"torch": "pytorch", "simpleitk": "simpleitk"}


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _readme_commands():
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", setup, re.S)]


def test_readme_has_exactly_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    demo, tests = cmds
    assert "torch==2.13.0" in demo and "torch==2.13.0" in tests  # pinned CPU build first, never bare torch
    assert "ctsam3d_nb.demo" in demo and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci


def test_torch_requirement_is_a_range_that_admits_the_pinned_build():
    reqs = {Requirement(r).name.lower(): Requirement(r) for r in _pyproject()["project"]["dependencies"]}
    assert reqs["torch"].specifier and "2.13.0" in reqs["torch"].specifier


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep)
            conda[m.group(1).lower()] = SpecifierSet(m.group(2).replace(" ", ""))
    pip_block = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert "-e ." in pip_block
    for r in _pyproject()["project"]["dependencies"]:
        req = Requirement(r)
        name = CONDA_NAMES.get(req.name.lower(), req.name.lower())
        assert name in conda, f"environment.yml lacks {name} (pyproject: {r})"
        assert conda[name] == req.specifier, f"{name}: conda {conda[name]} vs pip {req.specifier}"
    assert "conda-forge" in env["channels"]


def test_public_api_is_complete():
    import ctsam3d_nb

    for name in ctsam3d_nb.__all__:
        assert hasattr(ctsam3d_nb, name), name


@pytest.mark.parametrize("path", ["README.md", "LICENSE", "environment.yml", "pyproject.toml", ".ci/run",
                                  "data_samples/README.md"])
def test_project_files_exist(path):
    assert (REPO / path).is_file()


def test_demo_runs_and_writes_png(tmp_path, capsys):
    from ctsam3d_nb.demo import main

    out = tmp_path / "demo.png"
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "72 labelled structures" in printed
    assert main(["--out", str(out)]) == 2  # an explicit output is never overwritten silently
    assert main(["--out", str(out), "--overwrite"]) == 0
