"""Packages a training checkpoint as the bundled default model (colorize_core/default_model/): fits its
confident decode on the validation photos, then prints one table, clean and degraded validation photos,
of the new model under each decode beside the previous bundled model, gray and prior-mean.

Usage: python scripts/package_default_model.py CHECKPOINT BINSET SHARDS [PREVIOUS_PACKAGE_DIR]
"""

from __future__ import annotations

import glob
import json
import shutil
import sys
import tempfile
from pathlib import Path

from colorize_core.bins import BinSet
from colorize_core.data import open_local, read_rows
from colorize_core.decoder_fit import fit_decoder
from colorize_core.degrade import DegradeConfig
from colorize_core.evaluation import evaluate, predicted, samples, standard_configs
from colorize_core.models import parameter_count
from colorize_core.package import load_package, package_from_checkpoint, save_package

OUT = Path(__file__).resolve().parents[1] / "colorize_core" / "default_model"


def validation(shards: str, degraded: bool):
    urls = sorted(glob.glob(str(Path(shards) / "*.parquet")))
    return list(samples((x for u in urls for x in read_rows(u, open_local, "val")), DegradeConfig(p=1.0) if degraded else None))


def table(pkg, previous, clean, worn) -> dict[str, dict]:
    out = {}
    for tag, items in (("clean", clean), ("degraded", worn)):
        new = evaluate(pkg, predicted(pkg, items), standard_configs(pkg))
        out |= {f"{tag}/new/{k.split('/', 1)[1]}" if k.startswith("model/") else f"{tag}/{k}": v for k, v in new.items()}
        if previous is not None:
            old = evaluate(previous, predicted(previous, items), standard_configs(previous), baselines=False)
            out |= {f"{tag}/previous/{k.split('/', 1)[1]}": v for k, v in old.items()}
    return out


def main(checkpoint: str, bins_path: str, shards: str, previous_dir: str | None = None) -> None:
    bins = BinSet.load(bins_path)
    pkg = package_from_checkpoint(checkpoint, bins, meta={"name": "colorizer", "source": "bundled default model"})
    clean, worn = validation(shards, False), validation(shards, True)
    fit = fit_decoder(pkg, clean)
    pkg.decode = fit.decode
    previous = None
    if previous_dir:  # copied first: it may be the folder this run overwrites
        keep = tempfile.mkdtemp()
        shutil.copytree(previous_dir, keep, dirs_exist_ok=True)
        previous = load_package(keep)
    results = table(pkg, previous, clean, worn)
    pkg.meta |= {
        "validation": results,
        "parameters": parameter_count(pkg.model),
        "decoder_fit": {"feasible": fit.feasible, "tried": len(fit.tried)},
    }
    save_package(str(OUT), pkg)
    print(f"fitted decode: {json.dumps(fit.decode.settings())} (constraints met: {fit.feasible}, {len(fit.tried)} candidates)")
    print("| what | AuC | rebalanced AuC | PSNR (dB) | colourfulness | delta colourfulness | mean abs delta colourfulness |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k, v in results.items():
        print(
            f"| {k} | {100 * v['auc']:.2f} | {100 * v['auc_rebalanced']:.2f} | {v['psnr']:.2f} | {v['colourfulness']:.1f} | "
            f"{v['delta_colourfulness']:+.1f} | {v['abs_delta_colourfulness']:.1f} |"
        )
    print(json.dumps({"step": pkg.meta["step"], "parameters": pkg.meta["parameters"], "images": len(clean)}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
