"""How far the network's forward pass is from what this CPU can do, in one run: the practical peak
(a large matrix product and a wide convolution on every core, float32 and, where native, bfloat16) against the FLOP/s the
restore network achieves (its FLOPs counted from the architecture at the restore input, 8 x 1 x
256 x 256, by torch's own counter), for `small` and the ECCV16 layout, in each engine restore can
choose (torch eager, OpenVINO where installed).

Run in a process with the workers' allocator settings, as the network bound of `bench restore` is;
`make bench restore` prints this table too.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.timing import best_warm, capped
from colorize_core.engines import Engine, openvino_installed, run
from colorize_core.inference import cpu_supports_bf16
from colorize_core.models import Colorizer, ModelConfig

BATCH, SIZE = 8, 256  # the network bound's batch (bench restore) and the restore input


def matmul_peak(dtype: torch.dtype, n: int = 4096, reps: int = 3) -> float:
    """FLOP/s of an n x n x n matrix product on every core: the practical peak of this CPU."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / best_warm(lambda: torch.mm(a, b), reps)


def conv_peak(dtype: torch.dtype, engine: str = "torch", reps: int = 3) -> float:
    """FLOP/s of a wide 3x3 convolution: 512 -> 512 channels at 32 x 32, batch 8, the shape of
    ECCV16's middle layers, in torch (channels-last, what oneDNN runs best) or OpenVINO (whose own
    kernels run the same convolution faster on some CPUs: the peak is the best either reaches)."""
    x = torch.randn(8, 512, 32, 32).to(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(512, 512, 3, padding=1).eval().to(memory_format=torch.channels_last)
    flops = 2 * 8 * 512 * 512 * 9 * 32 * 32
    if engine == "openvino":
        import openvino as ov

        hint = "bf16" if dtype == torch.bfloat16 else "f32"
        compiled = ov.Core().compile_model(ov.convert_model(conv, example_input=(x,)), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        plain = x.contiguous().numpy()  # OpenVINO takes NCHW and lays it out itself
        return flops / best_warm(lambda: compiled(plain), reps)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
        return flops / best_warm(lambda: conv(x), reps)


def network_flops(arch: str) -> int:
    """FLOPs of one forward pass of the batch (a multiply-add counts two), as torch counts them."""
    model = Colorizer(ModelConfig(arch)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(BATCH, 1, SIZE, SIZE) * 100)
    return counter.get_total_flops()


def network_rate(arch: str, engine: Engine, reps: int = 3) -> float:
    """Forward passes a second of the batch, as restore runs it (`engines.run`: channels-last, autocast
    in torch; the converted model in OpenVINO)."""
    model = Colorizer(ModelConfig(arch)).eval().to(memory_format=torch.channels_last)
    L = torch.rand(BATCH, 1, SIZE, SIZE) * 100
    with torch.inference_mode():
        return 1 / best_warm(lambda: run(model, L, engine), reps)


def table() -> list[str]:
    torch.set_num_threads(os.cpu_count() or 1)
    native_bf16 = cpu_supports_bf16() and not capped()  # capped to AVX2, bf16 is emulated: hours for the peak's products
    precisions = [("float32", torch.float32)] + ([("bfloat16", torch.bfloat16)] if native_bf16 else [])
    names = ["torch"] + (["openvino"] if openvino_installed() else [])
    lines, worst, gain = [], 1.0, {}
    for precision, dtype in precisions:
        mm, conv = matmul_peak(dtype), {name: conv_peak(dtype, name) for name in names}
        flops = {arch: network_flops(arch) for arch in ("small", "eccv16")}
        rates = {arch: {name: network_rate(arch, Engine(name, precision)) for name in names} for arch in flops}
        reached = max(flops[a] * r for a in flops for r in rates[a].values())  # a network can beat the single products
        peak = max(mm, *conv.values(), reached)
        convs = ", ".join(f"{name} {c / 1e9:.0f}" for name, c in conv.items())
        lines.append(f"peak, {precision} on {torch.get_num_threads()} threads: {peak / 1e9:.0f} GFLOP/s, the best of a 4096^3 matrix product "
                     f"({mm / 1e9:.0f}), a 512-channel 3x3 convolution ({convs}) and the networks below ({reached / 1e9:.0f})")  # fmt: skip
        for arch, by in rates.items():
            best = max(by, key=by.get)
            worst = min(worst, flops[arch] * by[best] / peak)
            gain[arch, precision] = by[best] / by["torch"]
            each = ", ".join(f"{name} {r * BATCH:.2f} img/s = {flops[arch] * r / 1e9:.0f} GFLOP/s = {flops[arch] * r / peak:.0%}" for name, r in by.items())
            lines.append(f"  {arch:7s} {flops[arch] / BATCH / 1e9:6.1f} GFLOP an image: {each} of the peak (best {best}, {gain[arch, precision]:.2f}x torch)")
    lines.append(f"the forward pass in its best engine reaches at least {worst:.0%} of the peak in every precision here "
                 f"(target: >= 70 %, or the network bound >= 1.5x torch eager: best {max(gain.values()):.2f}x)")  # fmt: skip
    if not native_bf16:
        lines.append("bf16: not native on this CPU (emulated), so not measured against a peak")
    return lines


def main() -> bool:
    """In a fresh process with the workers' allocator settings (see tasks.cluster.WORKER_MALLOC)."""
    from tasks.cluster import WORKER_MALLOC

    res = subprocess.run([sys.executable, "-m", "bench.peak"], env={**os.environ, **WORKER_MALLOC}, capture_output=True, text=True)
    print(res.stdout, end="" if res.stdout.endswith("\n") else "\n")
    if res.returncode:
        print(res.stderr[-2000:])
    return res.returncode == 0


if __name__ == "__main__":
    print("\n".join(table()), flush=True)
