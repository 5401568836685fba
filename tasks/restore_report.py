"""A restore run's report: counts, failures and a contact sheet, as a Prefect artifact."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

from PIL import Image
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks import logger as get_run_logger
from tasks.layout import DestLayout
from tasks.manifest import ManifestRow
from tasks.storage import atomic_write, read_bytes


@dataclass
class RestoreSummary:
    run_id: str
    model: str
    seen: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0
    manifest: str = ""
    contact_sheet: str = ""
    report: str = ""
    iiif: str = ""
    comparison: str = ""
    outputs: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> str:
        return f"{self.done} colorized, {self.skipped} already done, {self.failed} failed"

    def count(self, rows: list[ManifestRow]) -> None:
        self.done = sum(r.status == "done" for r in rows)
        self.skipped = sum(r.status == "skipped" for r in rows)
        self.failed = sum(r.status == "failed" for r in rows)
        self.failures = [(r.source, r.error or "") for r in rows if r.status == "failed"]
        self.megapixels = sum((r.width or 0) * (r.height or 0) for r in rows if r.status == "done") / 1e6

    def markdown(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        lines = [
            f"# Restoration run {self.run_id}",
            f"Model **{self.model}**; outputs under `{self.outputs}`; manifest `{self.manifest}`; review page `{self.report}`.",
            "",
            "| seen | done | skipped | failed | megapixels | seconds | images/s |",
            "|---|---|---|---|---|---|---|",
            f"| {self.seen} | {self.done} | {self.skipped} | {self.failed} | {self.megapixels:.1f} | {self.seconds:.1f} | {rate:.2f} |",
        ]
        if self.failures:
            lines += ["", "## Failures", "", "| source | reason |", "|---|---|"] + [f"| {s} | {r} |" for s, r in self.failures]
        return "\n".join(lines)


def contact_sheet(rows: list[ManifestRow], limit: int = 12) -> bytes | None:
    """Before/after pairs of a sample of the run, two per row, from the review thumbnails."""
    pairs = [(r.grey_thumbnail, r.thumbnail) for r in rows if r.status == "done" and r.thumbnail][:limit]
    if not pairs:
        return None
    cell, cols = 160, 2
    sheet = Image.new("RGB", (cols * 2 * cell + (cols - 1) * 8, ((len(pairs) + cols - 1) // cols) * cell), "white")
    for i, (b, a) in enumerate(pairs):
        x, y = (i % cols) * (2 * cell + 8), (i // cols) * cell
        for dx, key in ((0, b), (cell, a)):
            pic = Image.open(io.BytesIO(read_bytes(key))).convert("RGB")
            pic.thumbnail((cell, cell))
            sheet.paste(pic, (x + dx, y))
    buf = io.BytesIO()
    sheet.save(buf, "PNG")
    return buf.getvalue()


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def publish_report(summary: RestoreSummary, rows: list[ManifestRow], layout: DestLayout) -> RestoreSummary:
    sheet = contact_sheet(rows)
    md = summary.markdown()
    if sheet:
        url = layout.contact_sheet(summary.run_id)
        atomic_write(url, sheet)
        summary.contact_sheet = url
        md += f"\n\n## Before / after\n\n![contact sheet](data:image/png;base64,{base64.b64encode(sheet).decode()})"
    create_markdown_artifact(key="restore-summary", markdown=md, description="Restoration run: counts, failures, contact sheet")
    logger = get_run_logger()
    for source, reason in summary.failures:
        logger.warning("failed %s: %s", source, reason)
    return summary
