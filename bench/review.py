"""The review page of a 1,000-item run: time to DOMContentLoaded from a local folder in headless
Chromium (target under 1 s), and the weight of the first view (what the browser loads to show it)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from PIL import Image

from tasks.layout import DestLayout
from tasks.manifest import ManifestRow
from tasks.review import PAGE, run_review_page

N = 1000


def rows(layout: DestLayout, run_id: str) -> list[ManifestRow]:
    """1,000 manifest rows with real thumbnail files (one picture, written under every item's name)."""
    folder = Path(layout.report(run_id)) / "img"
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (256, 192), (120, 140, 90)).save(buf, "JPEG", quality=82)
    out = []
    for i in range(N):
        h = f"{i:064x}"
        for tag in ("t", "gt", "p", "gp"):
            (folder / f"{h[:16]}.{tag}.jpg").write_bytes(buf.getvalue())
        status = "failed" if i % 97 == 0 else "done"
        r = ManifestRow(f"file:///archive/box-{i // 100:02d}/scan-{i:05d}.tif", h, run_id, "colorizer", "1", "0" * 64, "{}", status)
        if status == "done":
            r.thumbnail, r.grey_thumbnail = str(folder / f"{h[:16]}.t.jpg"), str(folder / f"{h[:16]}.gt.jpg")
            r.preview, r.grey_preview = str(folder / f"{h[:16]}.p.jpg"), str(folder / f"{h[:16]}.gp.jpg")
            r.doubt, r.seconds, r.width, r.height = (i * 37 % 100) / 100, 1.0, 3000, 2000
        else:
            r.error = "truncated or corrupt: image file is truncated"
        out.append(r)
    return out


def main() -> bool:
    from tests.browser import chromium

    with tempfile.TemporaryDirectory() as tmp:
        layout = DestLayout(str(Path(tmp) / "dest"), "colorizer-v1")
        items = rows(layout, "bench")
        page = run_review_page(layout, "bench", items, "file:///archive", f"{N} items", {"decode": "confident"})
        report = Path(page).parent
        first = [report / "index.html", report / "data" / "run.js"] + [Path(r.thumbnail) for r in items[:PAGE] if r.thumbnail]
        first += [Path(r.grey_thumbnail) for r in items[:PAGE] if r.grey_thumbnail]
        weight = sum(p.stat().st_size for p in first)
        driver = chromium(Path(tmp) / "downloads")
        try:
            times = []
            for _ in range(3):
                driver.get(Path(page).as_uri())
                times.append(driver.execute_script("const t = performance.timing; return t.domContentLoadedEventEnd - t.navigationStart;"))
            cards = len(driver.find_elements("css selector", "#grid .card"))
        finally:
            driver.quit()
        best = min(times) / 1000
        html_kb = sum(p.stat().st_size for p in first[:2]) / 1024
        print(f"{N}-item run: DOMContentLoaded {best * 1000:.0f} ms (best of 3; target < 1000 ms: {'met' if best < 1 else 'MISSED'})")
        print(
            f"first view: {cards} cards, {weight / 1024:.0f} KB in all ({html_kb:.0f} KB page and data, the rest {len(first) - 2} thumbnails)"
        )
        return best < 1.0
