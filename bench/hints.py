"""Hints, side by side: on validation photos, simulated curator hints (uniform random points, radius
1 % of the long side, the mean true ab there, seed 0) at 0, 1, 5, 10 and 20 points, scored for the
model with hints as restore uses it (the bundled model, or COLORIZE_HINT_MODEL), the classic
optimisation alone with the same hints (Levin et al. 2004: no network), and gray; for a model with a
hint refiner, also its spread without the refiner; for a model with hint input, also the hints spread
on the colours of a model without (COLORIZE_CLASSIC_MODEL). Then the review page's preview latency:
one image at preview size redrawn with a hint, as the page's server does per change.

The validation photos: the `val` split of the shards in COLORIZE_EVAL_SHARDS (the corpus the bundled
model was trained on, built by `scripts/`), else the real photographs that ship in the project's
dependencies (fewer, and some of them seen in training: say which in the figures)."""

from __future__ import annotations

import glob
import os
import tempfile
import time

from colorize_core.data import load_split, open_local
from colorize_core.evaluation import HINT_COUNTS, evaluate_hints, samples
from colorize_core.package import load_package
from tasks.model_resolve import BUNDLED_MODEL_DIR

PSNR_MARGIN, AUC_MARGIN, ONE_HINT_GAIN = 1.0, 2.0, 1.5  # dB over classic, rebalanced AuC points over classic, dB over automatic


def validation_photos() -> tuple[list, str]:
    folder = os.environ.get("COLORIZE_EVAL_SHARDS")
    if folder:
        rows = load_split(sorted(glob.glob(os.path.join(folder, "*.parquet"))), open_local, "val")
        return list(samples(rows)), f"the {len(rows)} validation photos of {folder}"
    import pyarrow.parquet as pq

    from colorize_core.shards import PreprocessConfig, make_row, rows_to_table
    from tests.photos import real_photo_bytes

    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(rows_to_table([make_row(d, n, PreprocessConfig(), split="val") for n, d in real_photo_bytes().items()]), f"{tmp}/v.parquet")
        rows = load_split([f"{tmp}/v.parquet"], open_local, "val")
    return list(samples(rows)), f"the {len(rows)} photos shipped in the dependencies (set COLORIZE_EVAL_SHARDS for the validation split)"


def table(results: dict[int, dict[str, dict]]) -> str:
    lines = [f"{'hints':>5s} {'method':24s} {'AuC':>6s} {'AuC rb':>7s} {'PSNR':>6s} {'|dC|':>6s}"]
    for n, by in results.items():
        for name, m in by.items():
            lines.append(f"{n:5d} {name:24s} {100 * m['auc']:6.2f} {100 * m['auc_rebalanced']:7.2f} {m['psnr']:6.2f} {m['abs_delta_colourfulness']:6.1f}")
    return "\n".join(lines)


def preview_latency(pkg, pkg_dir: str, changes: int = 6) -> float:
    """Median seconds of one redraw of a 2,000 px photo's preview with hints, as the colour tool's
    server does it (decoded source cached, one forward pass, the preview's join, JPEG)."""
    import io

    from PIL import Image

    from colorize_core.colorize import ColorizedBatch
    from colorize_core.hints import Hint
    from colorize_core.imageio import decode_image
    from colorize_core.settings import ColorizeConfig
    from colorize_core.writer import jpeg_bytes
    from tasks.restore_worker import PREVIEW
    from tests.photos import real_photo_bytes

    buf = io.BytesIO()
    Image.open(io.BytesIO(real_photo_bytes()["chelsea.png"])).convert("L").resize((2000, 1330)).save(buf, "PNG")
    img = decode_image(buf.getvalue(), "chelsea-2000.png")
    from colorize_core.package_files import package_checksum
    from tasks.engine_choice import engine_for

    cfg, engine = ColorizeConfig().resolved(pkg.decode), engine_for(pkg, package_checksum(pkg_dir), 256)[0]
    times = []
    for n in range(changes + 1):
        hints = tuple(Hint(0.1 + 0.12 * i, 0.3 + 0.05 * i, 0.01, (40.0, 20.0 - 8 * i)) for i in range(n + 1))
        t0 = time.perf_counter()
        jpeg_bytes(ColorizedBatch(pkg, [img], cfg, engine, [hints]).preview(0, PREVIEW), quality=85)
        times.append(time.perf_counter() - t0)
    return float(sorted(times[1:])[len(times[1:]) // 2])


def main() -> bool:
    pkg_dir = os.environ.get("COLORIZE_HINT_MODEL", BUNDLED_MODEL_DIR)
    pkg = load_package(pkg_dir)
    classic = load_package(os.environ.get("COLORIZE_CLASSIC_MODEL", BUNDLED_MODEL_DIR))
    items, what = validation_photos()
    how = "as its input" if pkg.model.cfg.hint_input else "spread along L's edges from its colours"
    how += ", refined by its hint refiner" if pkg.model.cfg.hint_refiner else ""
    print(f"hints: {what}; the model takes the hints {how}")
    t0 = time.perf_counter()
    results = evaluate_hints(pkg, items, HINT_COUNTS, classic)
    print(table(results))
    print(f"({time.perf_counter() - t0:.0f} s)")
    ok = True
    for n in HINT_COUNTS[1:]:
        net, cl = results[n]["model with hints"], results[n]["classic optimisation"]
        dpsnr, dauc = net["psnr"] - cl["psnr"], 100 * (net["auc_rebalanced"] - cl["auc_rebalanced"])
        met = dpsnr >= PSNR_MARGIN and dauc >= AUC_MARGIN
        ok &= met
        print(f"{n:2d} hints: model - classic: PSNR {dpsnr:+.2f} dB, rebalanced AuC {dauc:+.2f} (target +{PSNR_MARGIN} / +{AUC_MARGIN}, {'met' if met else 'missed'})")
    latency = preview_latency(pkg, pkg_dir)
    print(f"colour tool: a preview redrawn with hints in {1000 * latency:.0f} ms (median of 6 changes; target under 1,000 ms)")
    ok &= latency < 1.0
    gain = results[1]["model with hints"]["psnr"] - results[0]["model with hints"]["psnr"]
    print(f" 1 hint against none: PSNR {gain:+.2f} dB (target +{ONE_HINT_GAIN}, {'met' if gain >= ONE_HINT_GAIN else 'missed'})")
    return ok and gain >= ONE_HINT_GAIN
