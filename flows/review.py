"""Review flows: two model versions compared over one destination; curators' decisions imported."""

from __future__ import annotations

from prefect import flow

from tasks.checks import ArgumentError
from tasks.decisions import import_decisions
from tasks.layout import DestLayout
from tasks.restore import load_manifests
from tasks.review import write_compare_page


@flow(name="compare", log_prints=True)
def compare_flow(dest: str, models: list[str]) -> dict:
    """`models`: two output prefixes under DEST (`colorizer-v3`, `colorizer-v4`)."""
    if len(models) != 2:
        raise ArgumentError(f"compare takes two model versions (as their folders under DEST, e.g. colorizer-v3 colorizer-v4), not {models}")
    rows = load_manifests(DestLayout(dest, models[0]))
    by = {m: [r for r in rows if r.version_folder == m] for m in models}
    for m, found in by.items():
        if not any(r.status == "done" for r in found):
            known = sorted({r.version_folder for r in rows})
            raise ArgumentError(f"{dest} has no item done by {m} (versions there: {', '.join(known) or 'none'})")
    url, n = write_compare_page(dest, by[models[0]], by[models[1]], (models[0], models[1]))
    return {"page": url, "items": n}


@flow(name="review-import", log_prints=True)
def import_decisions_flow(decisions: str, dest: str) -> dict:
    url, n = import_decisions(decisions, dest)
    return {"decisions": n, "recorded": url}
