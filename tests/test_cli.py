"""The command line as a user meets it: one way to name a model version, every option explained,
results as prose or --json, and only the verbs that run flows wait for a Prefect API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.reference import commands
from tasks.checks import ArgumentError
from tasks.model_names import model_uri, output_folder

REPO = Path(__file__).resolve().parents[1]
COLORIZE = str(Path(sys.executable).parent / "colorize")
SAMPLE = REPO / "cli" / "samples" / "collection" / "camera.png"


@pytest.fixture()
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "COLORIZE_"))}
    return env | {"COLORIZE_HOME": str(tmp_path / "state"), "PREFECT_HOME": str(tmp_path / "prefect"), "DO_NOT_TRACK": "true"}


def colorize(*args, env, timeout=300, cwd=None):
    return subprocess.run([COLORIZE, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_a_model_version_is_named_one_way_with_short_forms(tmp_path):
    assert model_uri("colorizer/3") == model_uri("models:/colorizer/3") == "models:/colorizer/3"
    assert model_uri("colorizer@champion") == "models:/colorizer@champion"
    assert model_uri(str(tmp_path)) == str(tmp_path)  # a package folder
    assert output_folder("colorizer/3", "--models") == output_folder("models:/colorizer/3", "--models") == "colorizer-v3"
    assert output_folder("colorizer-v3-s0a1b2c3", "--models") == "colorizer-v3-s0a1b2c3"  # a folder of other settings
    for wrong in ("colorizer:3", "colorizer/three", "models:/", "colorizer-v3"):
        with pytest.raises(ArgumentError, match="models:/colorizer/3, colorizer/3"):
            model_uri(wrong)


def test_every_option_is_explained_and_every_verb_that_prints_results_has_json():
    found = commands()
    unexplained = [f"{verb} {p.name}" for verb, cmd in found.items() for p in cmd.params if not p.help]
    assert not unexplained, unexplained
    assert not [verb for verb, cmd in found.items() if not cmd.help]
    printing = ("preprocess", "bins", "train", "evaluate", "promote", "models", "pipeline", "restore", "image", "run", "compare", "verify",
                "review import")  # fmt: skip
    assert not [v for v in printing if "as_json" not in {p.name for p in found[v].params}]


def test_verbs_without_a_flow_answer_without_prefect(tmp_path, env):
    """verify, review import and argument errors never start the temporary Prefect API (its database
    is the first thing it makes), and Prefect's and MLflow's banners stay out of the terminal."""
    verdict = colorize("verify", SAMPLE, "--json", env=env)
    assert verdict.returncode == 1, verdict.stderr  # a grey original carries no credentials
    assert json.loads(verdict.stdout)["counts"]["missing"] == 1

    dest = tmp_path / "dest"
    dest.mkdir()
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps({"version": 1, "images": {"camera.png": [{"x": 0.5, "y": 0.5, "radius": 0.01, "color": "#b03a2e"}]}}))
    imported = colorize("review", "import", hints, dest, "--json", env=env)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["hints"] == 1

    for args in (["restore", tmp_path / "nowhere", dest], ["restore", SAMPLE.parent, dest, "--decode", "sepia"],
                 ["image", SAMPLE, tmp_path / "o.png", "--model", "colorizer:3"], ["compare", dest, "--models", "a", "--models", "b"]):  # fmt: skip
        p = colorize(*args, env=env)
        assert p.returncode == 2 and [ln for ln in p.stderr.splitlines() if ln.startswith("error:")], p.stderr
    assert not (Path(env["PREFECT_HOME"]) / "prefect.db").exists(), "a verb without a flow started Prefect"


@pytest.mark.slow
def test_models_lists_the_registered_versions(env):
    empty = colorize("models", env=env)
    assert empty.returncode == 0 and "no model is registered" in empty.stdout
    assert colorize("image", SAMPLE, Path(env["COLORIZE_HOME"]) / "o.png", env=env).returncode == 0  # registers the bundled model

    rows = json.loads(colorize("models", "--json", env=env).stdout)
    assert [(r["uri"], r["aliases"]) for r in rows] == [("models:/colorizer/1", ["champion"])]
    assert "bundled" in rows[0]["source"] and rows[0]["created"]
    table = colorize("models", "colorizer", env=env).stdout
    assert "models:/colorizer/1" in table and "champion" in table

    shown = json.loads(colorize("image", SAMPLE, Path(env["COLORIZE_HOME"]) / "o2.png", "--model", "colorizer/1", "--json", env=env).stdout)
    assert shown["model"] == "models:/colorizer/1"
    refused = colorize("promote", "colorizer@nosuchalias", env=env)
    assert refused.returncode == 2 and "no version of colorizer has the alias nosuchalias" in refused.stderr
