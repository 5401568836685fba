"""Packages a training checkpoint as the bundled default model (colorize_core/default_model/) and
prints its validation table next to the gray and prior-mean baselines.

Usage: python infra/package_default_model.py CHECKPOINT BINSET SHARDS
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

from colorize_core.bins import BinSet
from colorize_core.data import read_rows
from colorize_core.evaluation import evaluate_package
from colorize_core.models import parameter_count
from colorize_core.package import package_from_checkpoint, save_package

OUT = Path(__file__).resolve().parents[1] / "colorize_core" / "default_model"


def main(checkpoint: str, bins_path: str, shards: str) -> None:
    bins = BinSet.load(bins_path)
    pkg = package_from_checkpoint(checkpoint, bins, meta={"name": "colorizer", "source": "bundled default model"})
    urls = sorted(glob.glob(str(Path(shards) / "*.parquet")))
    results = evaluate_package(pkg, (x for u in urls for x in read_rows(u, lambda p: open(p, "rb"), "val")))
    pkg.meta["validation"] = results
    pkg.meta["parameters"] = parameter_count(pkg.model)
    save_package(str(OUT), pkg)
    print(f"| {'what':22s} | AuC | rebalanced AuC | PSNR | colourfulness | delta colourfulness |")
    print("|---|---|---|---|---|---|")
    for k, v in results.items():
        print(
            f"| {k:22s} | {v['auc']:.4f} | {v['auc_rebalanced']:.4f} | {v['psnr']:.2f} | {v['colourfulness']:.1f} | {v['delta_colourfulness']:+.1f} |"
        )
    print(json.dumps({"step": pkg.meta["step"], "parameters": pkg.meta["parameters"], "images": results["model/annealed-mean"]["images"]}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
