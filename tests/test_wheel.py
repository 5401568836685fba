"""The wheel is the product: built from the project's files, installed into a fresh venv beside the
project's dependencies, it colorizes outside the checkout with what it carries (model, bins, pages,
sample collection), and keeps its state in the user's data folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ("colorize_core/default_model/weights.pt", "colorize_core/default_model/bins.npz", "colorize_core/reference/pts_in_hull.npy",
                "tasks/web/review.html", "cli/samples/collection/camera.png")  # fmt: skip


def _tracked_copy(dest: Path) -> Path:
    """The project as a clean clone has it (no .venv, .state or build leftovers of this checkout)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def _fresh_venv(path: Path) -> Path:
    """A venv of the base interpreter that sees the project's dependencies (this venv's site-packages,
    appended by a .pth, so the installed project comes first) but not this checkout."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(subprocess.run([path / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site / "_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path


def _install(venv: Path, artefact: Path) -> None:
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    "--ignore-installed", "--disable-pip-version-check", str(artefact)], check=True)  # fmt: skip


def _user_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLORIZE_", "PREFECT_", "MLFLOW_", "PYTHON"))}
    return env | {"HOME": str(home), "XDG_DATA_HOME": "", "DO_NOT_TRACK": "true"}


@pytest.mark.slow
def test_the_installed_wheel_colorizes_outside_the_checkout(tmp_path):
    src = _tracked_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
                   check=True, cwd=tmp_path)  # fmt: skip
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"], check=True, cwd=src)
    wheel, sdist = next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [f for f in PACKAGE_DATA if f not in names], "package data missing from the wheel"
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]

    venv = _fresh_venv(tmp_path / "venv")
    _install(venv, wheel)
    user, work = tmp_path / "user", tmp_path / "elsewhere"
    work.mkdir()
    env = _user_env(user)
    where = subprocess.run([venv / "bin" / "python", "-c", "import cli, colorize_core; print(cli.__file__, colorize_core.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(REPO) not in where and str(venv) in where

    sample = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "cli" / "samples" / "collection"
    one = subprocess.run([venv / "bin" / "colorize", "image", str(sample / "camera.png"), "camera.png"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert (work / "camera.png").stat().st_size > 0
    assert "Successfully registered" not in one.stderr and "\x1b[" not in one.stderr  # third-party banners go to the log
    state = user / ".local" / "share" / "colorize"
    assert (state / "mlflow.db").exists() and (state / "logs" / "colorize.log").exists()

    run = subprocess.run([venv / "bin" / "colorize", "run"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert f"{len(os.listdir(sample))} colorized" in run.stdout
    assert (state / "restored").is_dir() and not (work / ".state").exists()

    # the sdist installs the same files
    venv2 = _fresh_venv(tmp_path / "venv2")
    _install(venv2, sdist)
    site2 = sample.parents[2].relative_to(venv)
    installed = {str(p.relative_to(venv2 / site2)) for p in (venv2 / site2).rglob("*") if p.is_file()}
    assert not [f for f in PACKAGE_DATA if f not in installed], "package data missing from the sdist's install"
