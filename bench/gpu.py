"""GPU figures, where CUDA is (`python -m bench.gpu` needs only torch and the core library).

Baselines measured in the same run: the GPU's bf16 matrix rate (an 8192^3 product) for training's
share of the peak, and the same machine's CPU for restore. Training runs the network alone on
synthetic batches (the ceiling a data loader must feed); restore is the core path of `colorize
restore`: one forward pass per batch on the GPU, decode, then each photo's full-resolution join on
the CPU, as the restore flow's workers do.
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from colorize_core.bins import canonical_bins
from colorize_core.colorize import ColorizedBatch
from colorize_core.engines import Engine
from colorize_core.imageio import decode_image
from colorize_core.losses import rebalanced_cross_entropy
from colorize_core.models import Colorizer, ModelConfig
from colorize_core.package import ColorizerPackage
from tasks.state import SAMPLE_COLLECTION



def _cuda_seconds(fn, reps: int) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def peak_tflops(n: int = 8192) -> float:
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    return 2 * n**3 / _cuda_seconds(lambda: a @ b, 10) / 1e12


def train_rate(arch: str, batch: int = 64, crop: int = 176, reps: int = 20) -> tuple[float, float]:
    """(img/s, TFLOP/s) of training steps: bf16 autocast, channels-last, Adam, the rebalanced loss."""
    bins = canonical_bins()
    model = Colorizer(ModelConfig(arch, bins.q), torch.from_numpy(bins.centres)).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    L = (torch.rand(batch, 1, crop, crop, device="cuda") * 100).contiguous(memory_format=torch.channels_last)
    h = crop // 4
    idx = torch.randint(0, bins.q, (batch, h, h, 5), device="cuda")
    soft = torch.softmax(torch.randn(batch, h, h, 5, device="cuda"), -1)
    w = torch.rand(batch, h, h, device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = rebalanced_cross_entropy(model(L), idx, soft, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    s = _cuda_seconds(step, reps)
    return batch / s, counter.get_total_flops() / s / 1e12


def restore_rate(arch: str, device: str, batch: int = 8, reps: int = 3) -> float:
    """Photos per second through the core restore path on the sample collection (cycled to `batch`)."""
    bins = canonical_bins()
    pkg = ColorizerPackage(Colorizer(ModelConfig(arch, bins.q), torch.from_numpy(bins.centres)).eval().to(device), bins)
    paths = sorted(SAMPLE_COLLECTION.iterdir())
    images = [decode_image(paths[i % len(paths)].read_bytes(), paths[i % len(paths)].name) for i in range(batch)]
    engine = Engine("torch", "bfloat16" if device == "cuda" else "float32")

    def run():
        b = ColorizedBatch(pkg, images, engine=engine)
        for i in range(batch):
            b.colorized(i)

    run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return batch * reps / (time.perf_counter() - t0)


def main() -> bool:
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: GPU figures come from a GPU machine (see the README)")
        return True
    torch.backends.cudnn.benchmark = True
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    peak = peak_tflops()
    print(f"bf16 matrix product 8192^3: {peak:.0f} TFLOP/s (the peak below is this)", flush=True)
    for arch in ("eccv16", "medium", "small"):
        ips, tflops = train_rate(arch)
        print(
            f"train {arch}, batch 64 x 176^2, bf16: {ips:8.0f} img/s, {tflops:6.1f} TFLOP/s = {100 * tflops / peak:.1f} % of the peak",
            flush=True,
        )
    for arch in ("eccv16", "medium", "small"):
        gpu, cpu = restore_rate(arch, "cuda"), restore_rate(arch, "cpu")
        print(
            f"restore core path {arch}, sample collection: GPU {gpu:.2f} img/s vs this machine's CPU {cpu:.2f} img/s -> {gpu / cpu:.2f}x",
            flush=True,
        )
    return True


if __name__ == "__main__":
    main()
