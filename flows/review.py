"""Review flows: two model versions compared over one destination; curators' decisions imported."""

from __future__ import annotations

from prefect import flow

from tasks.decisions import import_review_export
from tasks.review import rows_of_versions, write_compare_page


@flow(name="compare", log_prints=True)
def compare_flow(dest: str, models: list[str]) -> dict:
    """`models`: two output folders under DEST (`colorizer-v3`, `colorizer-v4`)."""
    by = rows_of_versions(dest, models)
    url, n = write_compare_page(dest, by[models[0]], by[models[1]], (models[0], models[1]))
    return {"page": url, "items": n}


@flow(name="review-import", log_prints=True)
def import_decisions_flow(decisions: str, dest: str) -> dict:
    """Decisions (JSON or CSV), or a hints document: both are what a review page exports. For
    deployments; `colorize review import` calls import_review_export itself, without a flow."""
    return import_review_export(decisions, dest)
