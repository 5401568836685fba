"""IIIF Presentation 3 manifests of a real run: validated by iiif-prezi3, and opened in Mirador (from
the npm registry) in headless Chromium, which lists the canvases and shows an image."""

import functools
import http.server
import json
import threading
import time
from pathlib import Path

import pytest
from iiif_prezi3 import Manifest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from colorize_core.settings import ColorizeConfig
from tests.browser import chromium, console_errors
from tests.test_restore import gray_of, make_package

VIEWER = Path(__file__).resolve().parent / "viewer"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A static web server on 127.0.0.1 over a folder holding the destination and the viewer."""
    root = tmp_path_factory.mktemp("site")
    if not (VIEWER / "node_modules" / "mirador" / "dist" / "mirador.min.js").exists():
        pytest.fail("Mirador is not installed: npm ci --prefix tests/viewer (make test does it)")
    (root / "viewer").symlink_to(VIEWER)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def run(served, monkeypatch_module, prefect_harness):
    from flows.restore import restore_flow

    root, url = served
    src = root / "src"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png"):
        gray_of(name).save(src / name)
    monkeypatch_module.setenv("COLORIZE_IIIF_BASE_URL", f"{url}/dest")
    monkeypatch_module.setenv("COLORIZE_IIIF_RIGHTS", "http://rightsstatements.org/vocab/NoC-US/1.0/")
    s = restore_flow(str(src), str(root / "dest"), model=make_package(root / "pkg", "1"), colorize=ColorizeConfig(), progress=False)
    return root, url, s


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_manifests_are_valid_presentation_3(run):
    root, url, s = run
    for path in (Path(s.iiif), root / "dest" / "_iiif" / "testmodel-v1" / "manifest.json"):
        doc = json.loads(path.read_text())
        m = Manifest(**doc)  # iiif-prezi3 validates every field on construction
        assert len(m.items) == 3 and doc["rights"].startswith("http://rightsstatements.org/")
        body = doc["items"][0]["items"][0]["items"][0]["body"]
        assert body["type"] == "Choice" and [b["label"]["en"][0] for b in body["items"]] == ["colorized", "grey original"]
        assert all(b["id"].startswith(f"{url}/dest/") for b in body["items"])
        labels = {md["label"]["en"][0]: md["value"]["en"][0] for md in doc["metadata"]}
        assert labels["Model"] == "testmodel version 1" and "compositeWithTrainedAlgorithmicMedia" in labels["Colorized"]


def test_the_run_opens_in_mirador(run, tmp_path):
    root, url, s = run
    manifest = f"{url}/dest/{Path(s.iiif).relative_to(root / 'dest')}"
    driver = chromium(tmp_path / "downloads")
    try:
        driver.get(f"{url}/viewer/mirador.html?manifest={manifest}")
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[role=listitem], li.MuiMenuItem-root")) >= 3)
        names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "li.MuiMenuItem-root")]
        assert {"chelsea.png", "coffee.png", "astronaut.png"} <= set(names), names
        state = driver.execute_script(
            "const m = window.viewer.store.getState().manifests; return Object.values(m).map(x => [x.id, x.error || null]);"
        )
        assert state == [[manifest, None]]
        # an image is shown: OpenSeadragon drew the first canvas's picture (not a blank canvas)
        drawn = """const c = document.querySelector('.openseadragon-canvas canvas'); if (!c) return 0;
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                   for (let i = 0; i < d.length; i += 400) if (d[i + 3] > 0 && (d[i] + d[i + 1] + d[i + 2]) > 30) n++; return n;"""
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(drawn) > 100)
        time.sleep(0.5)
        driver.save_screenshot(str(Path(__file__).resolve().parents[1] / ".state" / "screenshots" / "mirador.png"))
        ours = [e for e in console_errors(driver) if "React 19" not in e]  # Mirador 4's own deprecation notice aside
        assert ours == []
    finally:
        driver.quit()
