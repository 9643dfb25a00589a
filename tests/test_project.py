"""Set-up files agree with each other: README commands, .ci/run, pyproject, environment.yml."""
from __future__ import annotations

import re
import subprocess
import sys
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


CPU_TORCH = "--extra-index-url https://download.pytorch.org/whl/cpu --retries 0 torch==2.13.0"


def test_readme_has_exactly_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    demo, tests = cmds
    # pinned torch, CPU build from PyTorch's CPU index where reachable (never PyPI's multi-GB CUDA build),
    # and no minutes of retries where that index is unreachable
    assert CPU_TORCH + " -e ." in demo and CPU_TORCH + ' -e ".[dev]"' in tests
    assert demo.startswith("python3 -m venv .venv && ") and tests.startswith("python3 -m venv .venv && ")
    assert "ctsam3d_nb.demo" in demo and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci  # a whole line, character for character


def test_windows_commands_match_the_bash_ones():
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    (ps,) = re.findall(r"```powershell\n(.*?)```", setup, re.S)
    assert ".venv\\Scripts\\pip install -q " + CPU_TORCH + " -e ." in ps
    assert ".venv\\Scripts\\python -m ctsam3d_nb.demo" in ps and "&&" not in ps  # Windows PowerShell 5 has no &&


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
    assert "pytorch-cpu" in conda  # the CPU variant, as the README promises conda users
    assert not {"pytorch", "nvidia"} & set(env["channels"])  # PyTorch's channel publishes no new releases


def test_version_has_one_source():
    """pyproject reads the version from ctsam3d_nb/_version.py; the package and checkpoints use that one."""
    import ast

    import ctsam3d_nb
    from ctsam3d_nb import _version, checkpoint
    from packaging.version import Version

    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ctsam3d_nb._version.__version__"}
    assert "version" in _pyproject()["project"]["dynamic"] and "version" not in _pyproject()["project"]
    # setuptools reads the attribute without importing the package: a plain string assignment
    tree = ast.parse((REPO / "ctsam3d_nb" / "_version.py").read_text())
    (literal,) = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__"]
    assert literal == _version.__version__ == ctsam3d_nb.__version__ == checkpoint.__version__
    assert str(Version(literal)) == literal


def test_public_api_is_complete():
    import ctsam3d_nb

    for name in ctsam3d_nb.__all__:
        assert hasattr(ctsam3d_nb, name), name


def test_package_import_leaves_widgets_and_pandas_for_first_use():
    code = ("import sys, ctsam3d_nb as cs; heavy = ('pandas', 'ipywidgets', 'matplotlib.pyplot'); "
            "print([m for m in heavy if m in sys.modules], cs.SliceViewer.__name__, 'ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["[]", "SliceViewer", "True"]
    import ctsam3d_nb

    for name in ("HUWarning", "HU_WINDOW", "build_model", "save_checkpoint"):  # reached through their modules
        assert name not in ctsam3d_nb.__all__ and not hasattr(ctsam3d_nb, name)


@pytest.mark.parametrize("path", ["README.md", "LICENSE", "environment.yml", "pyproject.toml", ".ci/run",
                                  "data_samples/README.md", "CHANGELOG.md", "ctsam3d_nb/py.typed"])
def test_project_files_exist(path):
    assert (REPO / path).is_file()


def test_changelog_keeps_an_unreleased_section_first():
    text = (REPO / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections[0] == "[Unreleased]" and len(sections) >= 2


def test_demo_runs_and_writes_png(tmp_path, capsys):
    from ctsam3d_nb.demo import main

    out = tmp_path / "demo.png"
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "72 labelled structures" in printed
    assert main(["--out", str(out)]) == 2  # an explicit output is never overwritten silently
    assert main(["--out", str(out), "--overwrite"]) == 0


SCRIPTS = sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "tools").glob("*.py"))


def test_every_benchmark_and_tool_script_starts():
    """Each script in benchmarks/ and tools/ imports what it needs from the library and answers ``--help``: a
    rename in the library breaks a script nothing else runs (bench_train.py once imported a function that had
    moved to another module)."""
    code = ("import runpy, sys\n"
            "for path in sys.argv[1:]:\n"
            "    sys.argv = [path, '--help']\n"
            "    try:\n"
            "        runpy.run_path(path, run_name='__main__')\n"
            "    except SystemExit as e:\n"
            "        assert e.code in (0, None), (path, e.code)\n"
            "    else:\n"
            "        raise AssertionError(path + ' ran instead of printing its --help')\n")
    assert len(SCRIPTS) >= 9
    done = subprocess.run([sys.executable, "-c", code, *map(str, SCRIPTS)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("usage:") == len(SCRIPTS)
