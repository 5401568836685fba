"""Process entry for `torchrun`: one rank of data-parallel training (see tasks.train.train_model)."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from colorize_core.package import ColorizerPackage, save_package
from colorize_core.settings import DecodeConfig
from tasks.tracking import configure_mlflow
from tasks.train import TrainJob, run_training


def main(spec: dict) -> None:
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    run_id = os.environ.get("MLFLOW_RUN_ID") if rank == 0 else None
    if run_id:
        configure_mlflow()
    bins, result = run_training(TrainJob.from_dict(spec["job"]), run_id)
    out = spec["out"]
    torch.save({k: v.cpu() for k, v in result.model.state_dict().items()}, os.path.join(out, f"rank{rank}.pt"))
    if rank == 0:
        save_package(os.path.join(out, "package"), ColorizerPackage(result.model.cpu(), bins, DecodeConfig()))
        with open(os.path.join(out, "stats.json"), "w") as f:
            json.dump(result.stats(), f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
