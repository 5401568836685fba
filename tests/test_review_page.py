"""The review page of a real run, in a real browser: items, slider, failure reasons, decisions export,
filters and search; then decisions imported and a restore limited to the rejected items; and the
page comparing two model versions."""

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from colorize_core.settings import ColorizeConfig
from tests.browser import chromium, console_errors
from tests.test_restore import gray_of, make_package, wait_for

SCREENSHOTS = Path(__file__).resolve().parents[1] / ".state" / "screenshots"


@pytest.fixture(scope="module")
def run(tmp_path_factory, prefect_harness):
    from flows.restore import restore_flow

    root = tmp_path_factory.mktemp("review")
    src = root / "src"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"):
        gray_of(name).save(src / name.replace(".jpg", ".png"))
    (src / "broken.jpg").write_text("this is not a photograph")
    pkg = make_package(root / "pkg", "1")
    s = restore_flow(str(src), str(root / "dest"), model=pkg, colorize=ColorizeConfig(uncertainty=True), batch_size=2, progress=False)
    assert s.done == 4 and s.failed == 1 and s.report.endswith("index.html")
    return root, src, s


@pytest.fixture()
def browser(tmp_path):
    driver = chromium(tmp_path / "downloads")
    yield driver, tmp_path / "downloads"
    driver.quit()


def cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#grid .card")


def test_review_page_in_a_real_browser(run, browser):
    _, _, s = run
    driver, downloads = browser
    driver.get(Path(s.report).as_uri())
    WebDriverWait(driver, 30).until(lambda d: len(cards(d)) == 5)
    assert driver.find_element(By.ID, "count").text == "5 items"
    failed = driver.find_element(By.CSS_SELECTOR, '.card[data-status="failed"]')
    assert "not an image" in failed.find_element(By.CLASS_NAME, "reason").text
    wait_for(lambda: all(i.get_property("naturalWidth") > 0 for i in driver.find_elements(By.CSS_SELECTOR, "#grid img")), 30)

    # the before/after slider: dragging it changes what is shown
    driver.find_element(By.CSS_SELECTOR, '.card[data-status="done"] .pics').click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "detail").is_displayed())
    wait_for(lambda: driver.find_element(By.ID, "after").get_property("naturalWidth") > 0, 30)
    view = driver.find_element(By.ID, "compare")
    before_clip, before_png = driver.find_element(By.ID, "after").value_of_css_property("clip-path"), view.screenshot_as_png
    ActionChains(driver).drag_and_drop_by_offset(driver.find_element(By.ID, "slider"), 300, 0).perform()
    after_clip, after_png = driver.find_element(By.ID, "after").value_of_css_property("clip-path"), view.screenshot_as_png
    assert before_clip != after_clip and before_png != after_png
    assert driver.find_element(By.ID, "uncertainty").is_displayed(), "the uncertainty map, computed for this run"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "review-detail.png"))
    driver.find_element(By.ID, "close").click()

    # a decision on two items, exported
    done = driver.find_elements(By.CSS_SELECTOR, '.card[data-status="done"]')
    done[0].find_element(By.CSS_SELECTOR, 'button[data-decision="rejected"]').click()
    driver.find_elements(By.CSS_SELECTOR, '.card[data-status="done"]')[1].find_element(
        By.CSS_SELECTOR, 'button[data-decision="approved"]'
    ).click()
    driver.find_element(By.ID, "export-json").click()
    # the browser may show the file's name before it has written its bytes (seen on a busy machine)
    wait_for(lambda: any(_parses(p) for p in downloads.glob("decisions-*.json")), 30)
    exported = json.loads(next(downloads.glob("decisions-*.json")).read_text())
    assert sorted(d["decision"] for d in exported) == ["approved", "rejected"] and all(len(d["content_hash"]) == 64 for d in exported)

    # find what needs a look: failed only, most uncertain first, search by name
    Select(driver.find_element(By.ID, "view")).select_by_value("failed")
    WebDriverWait(driver, 10).until(lambda d: len(cards(d)) == 1)
    Select(driver.find_element(By.ID, "view")).select_by_value("uncertain")
    WebDriverWait(driver, 10).until(lambda d: len(cards(d)) == 4)
    doubts = [float(c.find_element(By.CLASS_NAME, "facts").text.split("doubt ")[1].split()[0]) for c in cards(driver)]
    assert doubts == sorted(doubts, reverse=True)
    driver.find_element(By.ID, "search").send_keys("coffee")
    WebDriverWait(driver, 10).until(lambda d: len(cards(d)) == 1 and "coffee" in cards(d)[0].text)
    driver.save_screenshot(str(SCREENSHOTS / "review.png"))
    assert console_errors(driver) == []


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (ValueError, OSError):
        return False


def test_decisions_imported_limit_a_later_restore_to_rejected_items(run, tmp_path, prefect_harness):
    from flows.restore import restore_flow
    from flows.review import import_decisions_flow
    from tasks.decisions import rejected

    root, src, s = run
    rows = pq.read_table(s.manifest).to_pylist()
    target = next(r for r in rows if r["status"] == "done")
    other = next(r for r in rows if r["content_hash"] != target["content_hash"])
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(
        "content_hash,source,decision,decided_at\n"
        f"{target['content_hash']},{target['source']},rejected,2026-11-30T10:00:00Z\n"
        f"{other['content_hash'] or 'x'},{other['source']},approved,2026-11-30T10:00:01Z\n"
    )
    out = import_decisions_flow(str(decisions), str(root / "dest"))
    assert out["decisions"] == 2 and pq.read_table(out["recorded"]).num_rows == 2
    assert rejected(str(root / "dest")) == [target["content_hash"]]
    v2 = make_package(root / "pkg2", "2", seed=3)  # redo the rejected item with another model
    again = restore_flow(str(src), str(root / "dest"), model=v2, only_rejected=True, progress=False)
    assert again.done == 1 and (root / "dest" / "testmodel-v2" / Path(target["output"]).name).exists()


def test_compare_page_orders_items_by_how_much_a_new_version_changes_them(run, browser, prefect_harness):
    from flows.restore import restore_flow
    from flows.review import compare_flow

    root, src, _ = run
    v3 = make_package(root / "pkg3", "3", seed=7)
    restore_flow(str(src), str(root / "dest"), model=v3, progress=False)
    out = compare_flow(str(root / "dest"), ["testmodel-v1", "testmodel-v3"])
    assert out["items"] == 4
    driver, _ = browser
    driver.get(Path(out["page"]).as_uri())
    WebDriverWait(driver, 30).until(lambda d: len(cards(d)) == 4)
    diffs = [float(c.find_element(By.CLASS_NAME, "facts").text.split("mean ab difference ")[1].split()[0]) for c in cards(driver)]
    assert diffs == sorted(diffs, reverse=True) and diffs[0] > 0
    time.sleep(0.5)
    assert console_errors(driver) == []


HOSTILE = "=1+1 #b?c%d.png"  # a formula to a spreadsheet; '#', '?' and '%' to a URL


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, prefect_harness):
    from flows.restore import restore_flow

    root = tmp_path_factory.mktemp("hostile")
    (root / "src").mkdir()
    gray_of("chelsea.png").save(root / "src" / HOSTILE)
    pkg = make_package(root / "pkg", "1")
    s = restore_flow(str(root / "src"), str(root / "dest"), model=pkg, colorize=ColorizeConfig(uncertainty=True), progress=False)
    assert s.done == 1
    return s


def test_a_hostile_name_keeps_its_links_and_its_csv_cell_stays_text(hostile_run, browser):
    """The uncertainty map of a file named with '#', '?', '%' loads; the slider's labels sit over the
    pictures they name; the CSV export keeps a formula-like name as text, and the import reads it back."""
    from tasks.decisions import parse_decisions

    driver, downloads = browser
    driver.get(Path(hostile_run.report).as_uri())
    WebDriverWait(driver, 30).until(lambda d: len(cards(d)) == 1)
    cards(driver)[0].find_element(By.CSS_SELECTOR, ".pics").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "detail").is_displayed())
    wait_for(lambda: driver.find_element(By.ID, "uncertainty").get_property("naturalWidth") > 0, 30)
    after, before = driver.find_element(By.ID, "label-after"), driver.find_element(By.ID, "label-before")
    assert after.text == "colorized" and before.text == "grey input"
    # the colorized picture covers the left part, up to the slider: its label is on the left
    assert after.rect["x"] < before.rect["x"]
    driver.find_element(By.ID, "close").click()
    cards(driver)[0].find_element(By.CSS_SELECTOR, 'button[data-decision="rejected"]').click()
    driver.find_element(By.ID, "export-csv").click()
    wait_for(lambda: any(p.stat().st_size > 0 for p in downloads.glob("decisions-*.csv")), 30)
    text = next(downloads.glob("decisions-*.csv")).read_text()
    assert f"\"'{HOSTILE}\"" in text, text
    [row] = parse_decisions(text.encode(), "decisions.csv")
    assert row["name"] == HOSTILE and row["decision"] == "rejected"
    assert console_errors(driver) == []


def _picture_from(driver, element_id: str) -> np.ndarray:
    """The pixels of an <img> as the browser shows them (RGB), read back through a canvas."""
    import base64
    import io

    from PIL import Image

    url = driver.execute_script(
        "const i = document.getElementById(arguments[0]); const c = document.createElement('canvas');"
        "c.width = i.naturalWidth; c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL('image/png');",
        element_id,
    )
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_a_curator_places_a_colour_and_the_batch_honours_it(tmp_path, browser, prefect_harness):
    """The colour tool, served: a click adds a hint, the preview is redrawn by the run's model and
    changes where the hint is and not far away; the export holds the hint in the hints format; the
    import and one rerun give an output that differs from the automatic one where the hint is."""
    import threading

    from colorize_core.color import rgb_to_lab
    from flows.restore import restore_flow
    from flows.review import import_decisions_flow
    from tasks.review_server import serve

    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    gray_of("chelsea.png").save(src / "cat.png")
    pkg = make_package(tmp_path / "pkg", "1")
    s = restore_flow(str(src), str(dest), model=pkg, progress=False)
    server = serve(str(dest), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver, downloads = browser
        run_folder = Path(s.report).parent.name
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/_reports/{run_folder}/index.html")
        WebDriverWait(driver, 30).until(lambda d: len(cards(d)) == 1)
        cards(driver)[0].find_element(By.CSS_SELECTOR, ".pics").click()
        wait_for(lambda: driver.find_element(By.ID, "after").get_property("naturalWidth") > 0, 30)
        driver.execute_script("document.getElementById('slider').value = 100; document.getElementById('slider').oninput();")
        automatic = _picture_from(driver, "after")
        driver.execute_script("document.getElementById('hint-color').value = '#1040e0';")  # a blue the model would not guess
        box = driver.find_element(By.ID, "before").rect
        ActionChains(driver).move_to_element_with_offset(driver.find_element(By.ID, "before"), int(0.3 * box["width"] - box["width"] / 2),
                                                         int(0.4 * box["height"] - box["height"] / 2)).click().perform()  # fmt: skip
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "compare").get_attribute("data-previews") == "1")
        wait_for(lambda: _picture_from(driver, "after").shape == automatic.shape, 10)
        hinted = _picture_from(driver, "after")
        H, W = automatic.shape[:2]
        b_auto, b_hint = (rgb_to_lab(p)[..., 2] for p in (automatic, hinted))  # b*: blue is negative
        near = (slice(int(0.4 * H) - 4, int(0.4 * H) + 4), slice(int(0.3 * W) - 4, int(0.3 * W) + 4))
        far = (slice(int(0.9 * H) - 4, int(0.9 * H) + 4), slice(int(0.9 * W) - 4, int(0.9 * W) + 4))
        assert b_hint[near].mean() < b_auto[near].mean() - 15, "blue where the curator put it"
        assert abs(b_hint[far].mean() - b_auto[far].mean()) < 3, "the rest as the model had it"
        status = driver.find_element(By.ID, "hint-status").text
        assert status.startswith("preview redrawn in"), status
        assert len(driver.find_elements(By.CSS_SELECTOR, "#compare .hint")) == 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "review-hints.png"))
        driver.find_element(By.ID, "close").click()
        driver.find_element(By.ID, "export-hints").click()
        wait_for(lambda: any(_parses(p) for p in downloads.glob("hints-*.json")), 30)
        exported = json.loads(next(downloads.glob("hints-*.json")).read_text())
        [hint] = exported["images"]["cat.png"]
        assert exported["version"] == 1 and hint["color"] == "#1040e0" and abs(hint["x"] - 0.3) < 0.05 and abs(hint["y"] - 0.4) < 0.05
        assert console_errors(driver) == []
    finally:
        server.shutdown()
    out = import_decisions_flow(str(next(downloads.glob("hints-*.json"))), str(dest))
    assert out["hints"] == 1
    from tasks.decisions import latest_hints

    again = restore_flow(str(src), str(dest), model=pkg, progress=False, hints=latest_hints(str(dest)))
    assert (again.done, again.skipped) == (1, 0)
    from PIL import Image

    [made] = (dest / "testmodel-v1").glob("cat.hints-*.png")
    a = rgb_to_lab(np.asarray(Image.open(dest / "testmodel-v1" / "cat.png").convert("RGB")))[..., 2]
    b = rgb_to_lab(np.asarray(Image.open(made).convert("RGB")))[..., 2]
    H, W = a.shape
    near = (slice(int(0.4 * H) - 4, int(0.4 * H) + 4), slice(int(0.3 * W) - 4, int(0.3 * W) + 4))
    assert b[near].mean() < a[near].mean() - 15
