"""Verify flow: what a C2PA reader says of one output or of every output under a destination (for
deployments; `colorize verify` calls the same function without a flow)."""

from __future__ import annotations

import dataclasses

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from tasks.verification import verify_outputs


@flow(name="verify", log_prints=True)
def verify_flow(target: str) -> dict:
    out = task(verify_outputs, cache_policy=NONE)(target)
    create_table_artifact(
        key="content-credentials", table=[dataclasses.asdict(v) for v in out["verdicts"]], description=f"Content Credentials under {target}"
    )
    return out
