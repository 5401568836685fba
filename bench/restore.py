"""Restoration speed, in one run on this machine's CPU (named by `make bench`):

- the reference implementation's own package (richzhang/colorization `colorizers`: load_img,
  preprocess_img, the ECCV16 generator, postprocess_tens) on the same network, weights and photos,
  when its folder is given in COLORIZE_REFERENCE_DIR (nothing is downloaded here); otherwise a
  re-statement of its loop, and the output says which;
- `colorize restore`'s flow, steady (a long-lived cluster with the model loaded), decoding the mean so
  both sides give the same colours, with everything it writes (review pictures, Content Credentials);
- the network alone, batch 8 at 256, in the precision chosen by measurement: the bound restore aims at;
- the same batches through the workers' own function in two plain processes side by side (no Dask, no
  Prefect): what the restore path itself can reach on this machine, so that the gap to the bound
  splits into the path's own work and what the cluster and the flow add;
- a per-stage profile of the restore path (one process, one thread), and the peak memory of a
  100-megapixel scan;
- first, the CPU's practical peak against the network's achieved FLOP/s (`bench/peak.py`).

The bound and the profile run in a process with the workers' allocator settings; the reference runs
in the bench's own process, as its demo runs for its users.

The network is the reference ECCV16 layout with random weights whose last layer holds the 313 bin
centres, so the reference's regression head decodes the mean of the predicted distribution.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color as skcolor

from bench.timing import report
from colorize_core.bins import canonical_bins
from colorize_core.colorize import ColorizedBatch, colorize_array, network_input
from colorize_core.constants import AB_NORM
from colorize_core.engines import Engine, run
from colorize_core.imageio import ReaderConfig, decode_image
from colorize_core.models import Colorizer, ModelConfig
from colorize_core.package import ColorizerPackage, load_package, save_package
from colorize_core.provenance import provenance
from colorize_core.settings import ColorizeConfig, DecodeConfig, UpsampleConfig
from colorize_core.writer import encode_output, jpeg_bytes, preview
from tests.photos import real_photo_bytes

N_PHOTOS = 32
BATCH = 4  # the restore flow's default
MEAN = ColorizeConfig(decode=DecodeConfig("mean"), upsample=UpsampleConfig("bilinear"))  # the reference's own decode


def collection(root: Path) -> list[Path]:
    """32 grey JPEGs of 2-4 megapixels, rescaled from the real photos in the wheels."""
    photos = [Image.open(io.BytesIO(b)).convert("L") for b in real_photo_bytes().values()]
    paths = []
    for i in range(N_PHOTOS):
        img = photos[i % len(photos)]
        mp = 2.0 + 2.0 * ((i * 13) % N_PHOTOS) / (N_PHOTOS - 1)  # sizes interleaved, as in a real collection
        s = (mp * 1e6 / (img.width * img.height)) ** 0.5
        paths.append(root / f"{i:03d}.jpg")
        img.resize((int(img.width * s), int(img.height * s)), Image.BICUBIC).save(paths[-1], quality=92)
    return paths


def reference_package():
    """The reference's own `colorizers` package from COLORIZE_REFERENCE_DIR, or None."""
    folder = os.environ.get("COLORIZE_REFERENCE_DIR")
    if not folder or not (Path(folder) / "colorizers").is_dir():
        return None
    if importlib.util.find_spec("IPython") is None:  # the reference imports IPython's embed and never calls it
        sys.modules["IPython"] = types.SimpleNamespace(embed=lambda *a, **k: None)
    sys.path.insert(0, folder)
    return importlib.import_module("colorizers")


def reference_network(bins, ref):
    """The reference ECCV16 generator with random weights (seeded) and the bin centres as its last layer."""
    torch.manual_seed(0)
    net = ref.eccv16(pretrained=False) if ref else Colorizer(ModelConfig("eccv16"), torch.from_numpy(bins.centres))
    with torch.no_grad():
        net.model_out.weight.copy_(torch.from_numpy(bins.centres).T[:, :, None, None] / AB_NORM)  # (2, 313, 1, 1)
    return net.eval()


def reference_loop(net, ref, paths: list[Path], out: Path) -> None:
    """The reference's demo: its own functions when its package is here, else the same steps re-stated."""
    for p in paths:
        if ref:
            img = ref.load_img(str(p))
            tens_l_orig, tens_l_rs = ref.preprocess_img(img, HW=(256, 256))
            with torch.no_grad():
                rgb = ref.postprocess_tens(tens_l_orig, net(tens_l_rs).cpu())
        else:
            rgb_in = np.asarray(Image.open(p).convert("RGB"))
            L = skcolor.rgb2lab(rgb_in)[..., 0]
            L_rs = skcolor.rgb2lab(np.asarray(Image.fromarray(rgb_in).resize((256, 256), 3)))[..., 0]
            with torch.no_grad():
                ab = net.reference_forward(torch.from_numpy(L_rs).float()[None, None])
            ab = F.interpolate(ab, size=L.shape, mode="bilinear")[0].permute(1, 2, 0).numpy()
            rgb = skcolor.lab2rgb(np.concatenate([L[..., None], ab], -1))
        Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(out / p.name, quality=95)


def network_only(model: Colorizer, engine: Engine, reps: int = 3) -> float:
    L = torch.rand(8, 1, 256, 256) * 100
    run(model, L, engine)
    t0 = time.perf_counter()
    for _ in range(reps):
        run(model, L, engine)
    return 8 * reps / (time.perf_counter() - t0)


def profile(pkg, paths: list[Path], engine: Engine) -> None:
    """Seconds per image of each stage of the restore path, in one process on one thread."""
    from pathlib import Path as P

    from tasks.credentials import CredentialSigner, development_identity
    from tasks.restore_worker import PREVIEW, THUMB

    torch.set_num_threads(1)
    signer = CredentialSigner(development_identity(P(tempfile.mkdtemp()) / "c2pa"))
    stages: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
        return out

    batch = paths[:8]
    data = [timed("read", lambda p=p: p.read_bytes()) for p in batch]
    imgs = [timed("decode", lambda d=d: decode_image(d, "x")) for d in data]
    cfg = MEAN.resolved(pkg.decode)
    colorize_array(pkg, np.zeros((8, 8), np.uint8))  # the compiled loops loaded, as `warm_worker` does
    b = timed("network input (resize, L)", lambda: torch.stack([network_input(i, 256) for i in imgs]))
    run(pkg.model, b[:, None], engine)  # kernels warmed, as in a long-lived worker
    batch_obj = timed("network and decode (batch of 8)", lambda: ColorizedBatch(pkg, imgs, cfg, engine))
    stages["network and decode (batch of 8)"] -= stages["network input (resize, L)"]  # the batch makes its input again
    prov = provenance("bench", "1", "0" * 64, cfg.settings())
    for i, (img, d) in enumerate(zip(list(imgs), data)):
        result = timed("upsample, gamut, join (full res. and previews)", lambda i=i: batch_obj.colorized(i, PREVIEW))
        rgb = result.rgb
        enc = timed("encode", lambda: encode_output(rgb, img, prov))
        timed("Content Credentials", lambda: signer.sign(enc, "JPEG", d, "JPEG", "0" * 64, prov, "x.jpg"))
        timed("review pictures (thumbnails, JPEGs)", lambda: [jpeg_bytes(p, 82) for big in result.previews for p in (big, preview(big, THUMB))])
        out = Path(tempfile.mkdtemp()) / "x.jpg"
        timed("write", lambda: out.write_bytes(enc))
    total = sum(stages.values())
    print(
        f"profile, {len(batch)} photos of {np.mean([i.size[0] * i.size[1] for i in imgs]) / 1e6:.1f} MP, one thread, {engine}:"
    )
    for k, v in stages.items():
        print(f"  {k:48s} {1000 * v / len(batch):8.1f} ms/image  {v / total:6.1%}")
    torch.set_num_threads(os.cpu_count() or 1)


PEAK_SCRIPT = r"""
import sys, torch
from colorize_core.colorize import ColorizedBatch
from colorize_core.imageio import decode_image
from colorize_core.package import load_package
from colorize_core.provenance import provenance
from colorize_core.settings import ColorizeConfig, DecodeConfig
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


def in_worker_conditions(what: str, pkg_dir: str, src: str, engine: Engine) -> str:
    """The network bound or the profile, measured in a process with the allocator settings of the
    workers that restore runs on (`tasks.cluster.WORKER_MALLOC`): in the bench's own process, glibc's
    defaults mmap and fault in every large temporary anew (the decode's, the network's), which would
    understate the bound (measured: 11.0 against 11.8 img/s) and overstate those stages."""
    from tasks.cluster import WORKER_MALLOC

    cmd = [sys.executable, "-m", "bench.restore", what, pkg_dir, src, str(engine)]
    res = subprocess.run(cmd, env={**os.environ, **WORKER_MALLOC}, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return res.stdout


def _restore_half(job, batches: list[list[str]], barrier, results) -> None:
    """One of the two plain processes of `side_by_side`: the model loaded and a batch done first, as
    in a warm worker, then its batches once both are ready, twice."""
    from tasks.restore_jobs import Settled
    from tasks.restore_worker import restore_batch, warm_worker

    warm_worker(job.ref, job.cfg.size)
    settled = Settled(frozenset())
    restore_batch(batches[0], job, settled)
    for _ in range(2):
        barrier.wait()
        t0 = time.perf_counter()
        for b in batches:
            restore_batch(b, job, settled)
        results.put(time.perf_counter() - t0)


def side_by_side(job, batches: list[list[str]]) -> float:
    """Seconds for `batches` split between two plain processes started together (best of two), with the
    workers' allocator settings: the restore path's own ceiling here."""
    import multiprocessing

    from tasks.cluster import WORKER_MALLOC
    from tasks.state import environ_kept

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_restore_half, args=(job, batches[i::2], barrier, results)) for i in range(2)]
    with environ_kept(WORKER_MALLOC):
        os.environ.update(WORKER_MALLOC)
        for p in procs:
            p.start()
    times = [results.get(timeout=600) for _ in range(4)]  # two rounds of two
    for p in procs:
        p.join()
    return min(max(times[:2]), max(times[2:])) if all(p.exitcode == 0 for p in procs) else float("nan")


def _warm() -> None:
    import tasks.restore_worker  # noqa: F401  (torch, the core, storage)


def main() -> bool:
    from prefect.testing.utilities import prefect_test_harness

    from bench import peak

    peak.main()  # the CPU's peak against the network's achieved FLOP/s, before the restore figures

    from flows.restore import restore_flow
    from tasks.cluster import dask_client
    from tasks.credentials import signing_identity
    from tasks.layout import DestLayout
    from tasks.registry import resolve_model
    from tasks.restore_runs import restore_on_dask
    from tasks.restore_jobs import RestoreJob
    from tasks.restore_worker import warm_worker

    bins = canonical_bins()
    ref = reference_package()
    net = reference_network(bins, ref)
    ours = Colorizer(ModelConfig("eccv16"), torch.from_numpy(bins.centres))
    ours.load_state_dict(net.state_dict())  # what `colorize import-weights` does with the reference's checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("src", "ref"):
            (root / d).mkdir()
        paths = collection(root / "src")
        mp = sum(Image.open(p).width * Image.open(p).height for p in paths) / 1e6
        pkg_dir = root / "pkg"
        save_package(str(pkg_dir), ColorizerPackage(ours.eval(), bins, meta={"name": "eccv16-random", "version": "1"}))
        pkg = load_package(str(pkg_dir))

        with prefect_test_harness(server_startup_timeout=300), dask_client(n_workers=os.cpu_count() or 2) as client:
            client.run(_warm)
            model_ref = resolve_model(str(pkg_dir))
            chosen = set(client.run(warm_worker, model_ref, 256).values())  # a long-lived cluster: the model loaded, its engine chosen
            engine = Engine.parse(chosen.pop())
            print(f"engine: {engine} (the workers' choice, see `bench engines` for the candidates)")
            # steady: the run's batches on the workers, as a long collection runs once under way
            job = RestoreJob(str(root / "src"), DestLayout(str(root / "steady"), model_ref.prefix), model_ref, MEAN.resolved(pkg.decode),
                             ReaderConfig(), "steady", True, signing_identity(root))  # fmt: skip
            batches = [[p.as_uri() for p in paths[i : i + BATCH]] for i in range(0, len(paths), BATCH)]
            t_steady = float("inf")
            for k in range(2):  # best of two, each into its own folder
                job = dataclasses.replace(job, layout=DestLayout(str(root / f"steady{k}"), model_ref.prefix))
                t0 = time.perf_counter()
                restore_on_dask.fn(batches, job, client.scheduler.address, {}, None, False)
                t_steady = min(t_steady, time.perf_counter() - t0)
            # a whole run of the flow: listing, hashing, lease, manifests, review page, IIIF beside the photos (best of two)
            t_run = float("inf")
            for k in range(2):
                t0 = time.perf_counter()
                s = restore_flow(str(root / "src"), str(root / f"dest{k}"), model=str(pkg_dir), colorize=MEAN, progress=False,
                                 dask_address=client.scheduler.address)  # fmt: skip
                t_run = min(t_run, time.perf_counter() - t0)
        t_plain = side_by_side(dataclasses.replace(job, layout=DestLayout(str(root / "plain"), model_ref.prefix)), batches)
        torch.set_num_threads(os.cpu_count() or 1)
        t0 = time.perf_counter()
        reference_loop(net, ref, paths, root / "ref")
        t_ref = time.perf_counter() - t0
        what = (
            "the reference package (colorizers) itself"
            if ref
            else "a re-statement of the reference loop (set COLORIZE_REFERENCE_DIR for its package)"
        )
        diffs = []
        for p in paths[:8]:
            a = skcolor.rgb2lab(np.asarray(Image.open(Path(s.outputs) / p.name).convert("RGB")))[..., 1:]  # the flow's (its folder names the settings)
            b = skcolor.rgb2lab(np.asarray(Image.open(root / "ref" / p.name).convert("RGB")))[..., 1:]
            diffs.append(np.abs(a - b).mean())
        net_rate = float(in_worker_conditions("network", str(pkg_dir), str(root / "src"), engine))
        steady = N_PHOTOS / t_steady
        share = steady / net_rate
        print(f"{N_PHOTOS} photos, {mp:.0f} MP; against {what} ({N_PHOTOS / t_ref:.2f} img/s, {mp / t_ref:.1f} MP/s)")
        print(
            f"restore, steady (batches of {BATCH} on {os.cpu_count()} workers, review pictures and Content Credentials included): "
            f"{steady:.2f} img/s, {mp / t_steady:.1f} MP/s"
        )
        print(
            f"a whole run of the flow ({s.done} done; listing, hashing, lease, manifests, review page, IIIF too): {t_run:.1f} s, "
            f"{t_ref / t_run:.1f}x the reference's {t_ref:.1f} s; the command's own start-up is in `bench startup`"
        )
        print(f"mean |ab| difference to the reference's outputs (after JPEG): {np.mean(diffs):.2f}")
        print(
            f"network only (batch 8 at 256, {engine}, {os.cpu_count()} threads): {net_rate:.2f} img/s; "
            f"restore reaches {share:.0%} of it (target >= 80%: {'met' if share >= 0.8 else 'MISSED'})"
        )
        print(
            f"the same batches in two plain processes side by side (the workers' function, no Dask, no Prefect): "
            f"{N_PHOTOS / t_plain:.2f} img/s, {N_PHOTOS / t_plain / net_rate:.0%} of the bound: this path's own ceiling here; "
            f"the flow's steady reaches {t_plain / t_steady:.0%} of it"
        )
        target = 4.5 if engine.bf16 else 2.0
        ok = report("colorize restore, steady", t_steady, t_ref, "the reference", target) and np.mean(diffs) < 1.0 and share >= 0.8
        print(in_worker_conditions("profile", str(pkg_dir), str(root / "src"), engine), end="")

        big = root / "scan100mp.jpg"
        src = Image.open(paths[0]).resize((10000, 10000), Image.BILINEAR)
        src.save(big, quality=90)
        del src
        res = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(pkg_dir), str(big)], capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-2000:])
            return False
        model_mb, peak_mb, _, size = res.stdout.split(maxsplit=3)
        met = float(peak_mb) < 1536
        print(
            f"100 MP scan {size.strip()}: peak RSS {float(peak_mb):.0f} MB above the loaded model ({float(model_mb):.0f} MB); target < 1536 MB: {'met' if met else 'MISSED'}"
        )
        return ok and met


if __name__ == "__main__":  # `in_worker_conditions`: what, package folder, photos folder, engine
    what, pkg_dir, src, engine = sys.argv[1:5]
    pkg = load_package(pkg_dir)
    if what == "network":
        torch.set_num_threads(os.cpu_count() or 1)  # the bound: every core on one network
        print(network_only(pkg.model, Engine.parse(engine)))
    else:
        profile(pkg, sorted(Path(src).glob("*.jpg")), Engine.parse(engine))
