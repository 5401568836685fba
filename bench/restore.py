"""Restoration throughput vs the reference demo's per-image loop, network-only throughput, and the
peak memory of a 100-megapixel scan."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color as skcolor
from skimage.transform import resize as skresize

from bench.timing import report
from colorize_core.bins import canonical_bins
from colorize_core.colorize import ColorizeConfig
from colorize_core.decoding import DecodeConfig
from colorize_core.inference import cpu_supports_bf16
from colorize_core.models import Colorizer, ModelConfig
from colorize_core.package import ColorizerPackage, save_package
from colorize_core.upsample import UpsampleConfig
from tests.photos import real_photo_bytes

N_PHOTOS = 32


def collection(root: Path) -> list[Path]:
    """32 grey JPEGs of 2-4 megapixels, rescaled from the real photos in the wheels."""
    photos = [Image.open(io.BytesIO(b)).convert("L") for b in real_photo_bytes().values()]
    paths = []
    for i in range(N_PHOTOS):
        img = photos[i % len(photos)]
        mp = 2.0 + 2.0 * i / (N_PHOTOS - 1)
        s = (mp * 1e6 / (img.width * img.height)) ** 0.5
        paths.append(root / f"{i:03d}.jpg")
        img.resize((int(img.width * s), int(img.height * s)), Image.BICUBIC).save(paths[-1], quality=92)
    return paths


def demo_loop(model: Colorizer, paths: list[Path], out: Path) -> list[np.ndarray]:
    """What the reference demo does: skimage Lab and resize, one float32 forward per image,
    upsample the ab, join with the original L, skimage back to RGB."""
    outs = []
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        lab = skcolor.rgb2lab(rgb)
        L_orig = lab[:, :, 0]
        L_rs = skcolor.rgb2lab(skresize(rgb, (256, 256)))[:, :, 0]
        with torch.no_grad():
            ab = model.reference_forward(torch.from_numpy(L_rs).float()[None, None])  # (1, 2, 256, 256) mean decode
            ab = F.interpolate(ab, size=L_orig.shape, mode="bilinear")[0].permute(1, 2, 0).numpy()
        rgb_out = skcolor.lab2rgb(np.concatenate([L_orig[..., None], ab], axis=2))
        Image.fromarray((rgb_out * 255).round().astype(np.uint8)).save(out / p.name, quality=95)
        outs.append(ab)
    return outs


def network_only(model: Colorizer, bf16: bool) -> float:
    L = torch.rand(8, 1, 256, 256) * 100
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(L)
        t0 = time.perf_counter()
        for _ in range(3):
            model(L)
    return 24 / (time.perf_counter() - t0)


PEAK_SCRIPT = r"""
import sys, torch, numpy as np
from colorize_core.imageio import decode_image
from colorize_core.package import load_package
from colorize_core.colorize import ColorizeConfig, ColorizedBatch
from colorize_core.decoding import DecodeConfig
from colorize_core.provenance import provenance
from colorize_core.writer import encode_output
def hwm():
    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) / 1024
torch.set_num_threads(2)
pkg = load_package(sys.argv[1])
before = hwm()
data = open(sys.argv[2], 'rb').read()
img = decode_image(data, sys.argv[2])
cfg = ColorizeConfig(decode=DecodeConfig('mean'))
rgb = ColorizedBatch(pkg, [img], cfg).colorized(0).rgb
out = encode_output(rgb, img, provenance('bench', '1', '0' * 64, cfg.settings()))
print(before, hwm() - before, len(out), img.size)
"""


def _warm() -> None:
    import tasks.restore  # noqa: F401  (torch, the core, storage)


def main() -> bool:
    torch.manual_seed(0)
    bins = canonical_bins()
    model = Colorizer(ModelConfig("eccv16"), torch.from_numpy(bins.centres)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("src", "demo", "dest"):
            (root / d).mkdir()
        paths = collection(root / "src")
        mp = sum(Image.open(p).width * Image.open(p).height for p in paths) / 1e6
        pkg_dir = root / "pkg"
        save_package(str(pkg_dir), ColorizerPackage(model, bins, meta={"name": "eccv16-random", "version": "1"}))

        torch.set_num_threads(2)
        t0 = time.perf_counter()
        demo_ab = demo_loop(model, paths, root / "demo")
        t_demo = time.perf_counter() - t0

        from prefect.testing.utilities import prefect_test_harness

        from flows.restore import restore_flow
        from tasks.cluster import dask_client

        with prefect_test_harness(server_startup_timeout=120), dask_client(n_workers=2) as client:
            client.run(_warm)  # a long-lived cluster: workers up, libraries imported (the model loads inside the run)
            t0 = time.perf_counter()
            s = restore_flow(
                str(root / "src"),
                str(root / "dest"),
                model=str(pkg_dir),
                colorize=ColorizeConfig(decode=DecodeConfig("mean"), upsample=UpsampleConfig("bilinear")),
                batch_size=4,
                progress=False,
                dask_address=client.scheduler.address,
            )
            t_ours = time.perf_counter() - t0
        # equal outputs: ab of our files against the loop's predicted ab
        diffs = []
        for p, ab_demo in zip(paths[:8], demo_ab[:8]):
            ours = skcolor.rgb2lab(np.asarray(Image.open(root / "dest" / "eccv16-random-v1" / p.name).convert("RGB")))[..., 1:]
            diffs.append(np.abs(ours - ab_demo).mean())
        bf16 = cpu_supports_bf16()
        net = network_only(model, bf16)
        print(
            f"{N_PHOTOS} photos, {mp:.0f} MP: restore {N_PHOTOS / t_ours:.2f} img/s {mp / t_ours:.1f} MP/s; demo loop {N_PHOTOS / t_demo:.2f} img/s {mp / t_demo:.1f} MP/s; done {s.done}"
        )
        print(f"mean |ab| difference to the loop's output (after JPEG): {np.mean(diffs):.2f}")
        print(
            f"network only (batch 8 at 256, {'bf16' if bf16 else 'fp32'}): {net:.2f} img/s; the whole restore reaches {N_PHOTOS / t_ours / net:.0%} of it"
        )
        ok = report("colorize restore", t_ours, t_demo, "demo-style per-image loop", 3.0) and np.mean(diffs) < 1.0

        big = root / "scan100mp.jpg"
        src = Image.open(paths[0]).resize((10000, 10000), Image.BILINEAR)
        src.save(big, quality=90)
        del src
        res = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, str(pkg_dir), str(big)], capture_output=True, text=True, env=dict(os.environ)
        )
        if res.returncode:
            print(res.stderr[-2000:])
            return False
        model_mb, peak_mb, out_bytes, size = res.stdout.split(maxsplit=3)
        print(
            f"100 MP scan {size}: peak RSS {float(peak_mb):.0f} MB above the loaded model ({float(model_mb):.0f} MB); target < 1536 MB: {'met' if float(peak_mb) < 1536 else 'MISSED'}"
        )
        return ok and float(peak_mb) < 1536
