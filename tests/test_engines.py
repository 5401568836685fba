"""The engine restore runs the network in: OpenVINO computes what torch does, the choice is measured
once per model and CPU on real photographs and kept, an engine that changes the colours is never
chosen, and a setting forces the choice (a wrong one is named before anything runs)."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from colorize_core.colorize import decoded
from colorize_core.engines import MIN_GAIN, Engine, candidates, choose, run
from colorize_core.package import load_package
from colorize_core.package_files import package_checksum
from tasks.engine_choice import engine_for, gate_photos
from tasks.model_resolve import BUNDLED_MODEL_DIR
from tests.test_cli import SAMPLE, colorize, env  # noqa: F401 - env is a fixture


@pytest.fixture(scope="module")
def bundled():
    return load_package(BUNDLED_MODEL_DIR), package_checksum(BUNDLED_MODEL_DIR)


def colours(pkg):
    return lambda pred: decoded(pkg, pred, pkg.decode)


def _openvino_against_torch() -> list[tuple[tuple[int, ...], float]]:
    """(shape, mean |delta ab|) at batch 4 and 1, the model converted once with a free batch dimension."""
    pkg = load_package(BUNDLED_MODEL_DIR)
    L = gate_photos(128)  # (4, 1, 128, 128)
    out = []
    for batch in (L, L[:1]):
        ours, theirs = colours(pkg)(run(pkg.model, batch, Engine("openvino"))), colours(pkg)(run(pkg.model, batch, Engine()))
        assert ours.shape == theirs.shape
        out.append((tuple(ours.shape), float((ours - theirs).abs().mean())))
    return out


def test_openvino_runs_the_model_as_torch_does_at_any_batch():
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # OpenVINO never in this process
        (four, d4), (one, d1) = pool.submit(_openvino_against_torch).result()
    assert four == (4, 2, 32, 32) and one == (1, 2, 32, 32)
    assert d4 < 0.05 and d1 < 0.05


def test_the_choice_is_measured_once_kept_and_the_fastest_that_passes(tmp_path, env):  # noqa: F811
    """Measured where production measures, in a process of its own (`colorize image`, as a worker):
    OpenVINO's bf16 kernels in the test process made a later test's torchrun child end it with a
    segmentation fault (see tests/conftest.py)."""
    made = [colorize("image", SAMPLE, tmp_path / f"{k}.png", env=env) for k in range(2)]
    assert all(m.returncode == 0 for m in made), made[0].stderr
    cache = Path(env["COLORIZE_HOME"]) / "cache" / "engines.json"
    (entry,) = json.loads(cache.read_text()).values()  # one model, one size, one CPU: measured once
    figures, engine = entry["candidates"], Engine.parse(entry["engine"])
    assert figures["torch float32"]["mean_ab_difference"] == 0 and figures[str(engine)]["passes"]
    assert {"torch float32", "openvino float32"} <= set(figures)
    fastest = min(f["seconds_per_image"] for f in figures.values() if f.get("passes"))
    assert figures[str(engine)]["seconds_per_image"] <= fastest * MIN_GAIN
    for k in range(2):
        assert json.loads(Image.open(tmp_path / f"{k}.png").text["colorize:provenance"])["engine"] == str(engine)
    if engine.name == "openvino":  # kept converted: the next worker reads it back instead of converting
        assert list((cache.parent / "openvino").glob("*/model.xml"))


def test_an_engine_that_changes_the_colours_is_not_chosen(bundled):
    pkg, _ = bundled
    amplified = lambda pred: colours(pkg)(pred) * 1000  # noqa: E731 - bf16's rounding now far past the gate
    torch_only = [e for e in candidates(pkg.model) if e.name == "torch"]  # in this process, see above
    engine, figures = choose(pkg.model, gate_photos(128), amplified, torch_only)
    assert engine == Engine() and figures["torch float32"]["passes"]
    assert all(not f["passes"] for name, f in figures.items() if name.endswith("bfloat16"))


def test_a_set_engine_is_taken_unmeasured_and_a_wrong_one_is_named(bundled, tmp_path, monkeypatch, env):  # noqa: F811
    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path))
    pkg, sha = bundled
    monkeypatch.setenv("COLORIZE_ENGINE", "torch")
    assert engine_for(pkg, sha, 128) == (Engine("torch", "float32"), "set by COLORIZE_ENGINE")
    assert not (tmp_path / "cache" / "engines.json").exists()
    monkeypatch.setenv("COLORIZE_ENGINE", "tensorrt")
    with pytest.raises(ValueError, match="COLORIZE_ENGINE.*tensorrt"):
        engine_for(pkg, sha, 128)

    wrong = colorize("image", SAMPLE, tmp_path / "a.png", "--engine", "openvino int4", env=env)
    assert wrong.returncode == 2 and "--engine" in wrong.stderr and "openvino int4" in wrong.stderr
    made = colorize("image", SAMPLE, tmp_path / "b.png", "--engine", "openvino float32", env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(Image.open(tmp_path / "b.png").text["colorize:provenance"])["engine"] == "openvino float32"
