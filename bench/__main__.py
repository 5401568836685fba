"""`make bench`: every benchmark, each printing ratios against a baseline measured in the same run."""

import importlib
import os
import sys

from bench.timing import capped

SUITES = ["startup", "core", "preprocess", "train", "restore", "engines", "review", "hints", "gpu"]


def machine() -> str:
    """The CPU every figure belongs to: its name, torch's capability, whether bfloat16 is native."""
    import torch

    from colorize_core.inference import cpu_supports_bf16

    name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown CPU")
    caps = capped()
    return (
        f"CPU: {name}, {os.cpu_count()} cores, torch capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {'yes' if cpu_supports_bf16() else 'no'}"
        + (f"; instruction sets CAPPED by {', '.join(f'{k}={v}' for k, v in caps.items())} (bf16 then emulated)" if caps else "")
    )


def main() -> int:
    from tasks.state import apply_embedded_defaults

    apply_embedded_defaults()
    only = sys.argv[1:] or SUITES
    print(machine(), flush=True)
    failed = []
    for name in only:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"bench.{name}":
                print(f"== {name}: not built yet")
                continue
            raise
        print(f"== {name}", flush=True)
        if not mod.main():
            failed.append(name)
    if failed:
        print(f"targets missed in: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
