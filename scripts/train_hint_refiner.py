"""Trains the hint refiner (colorize_core/hint_refiner.py) of a package on the corpus's training photos
with simulated curator hints, and writes the package with it.

The network's colours it corrects are those of each training photo turned a quarter: upright, the
network recalls the photos it was trained on (PSNR 24.2 dB on 60 of them, AMD EPYC 2026-12-07), turned it
colours them as it does unseen photos (20.3 dB; 20.5 on the validation photos). A refiner trained on
the recalled colours would learn to trust them more than unseen photos deserve.

Each training photo gets SETS hint sets (1 + Geometric(0.15) hints, at most 24; radius log-uniform
0.5-2 % of the long side; each the mean true ab there, as `bench hints` simulates a curator), spread
along the photo's edges over the package's own automatic colours; the refiner learns the correction
towards the truth. A tenth of the training photos is held out: every 250 steps the refiner is scored
on them, and the best of those checkpoints ships (the validation photos are left to `bench hints`).
The pool is built once (OUT/pool.pt), the run checkpoints every 250 steps (OUT/refiner.pt) and resumes
exactly from there when started again with the same arguments.

Usage: python scripts/train_hint_refiner.py PACKAGE_DIR SHARDS OUT [STEPS=3000] [SETS=8]  (the bundled model's run)
Then: COLORIZE_EVAL_SHARDS=SHARDS COLORIZE_HINT_MODEL=OUT/package python -m bench hints
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F

from colorize_core.colorize import chroma_at_working_size
from colorize_core.data import load_split, open_local
from colorize_core.evaluation import samples, simulated_curator_hints
from colorize_core.hint_propagation import spread
from colorize_core.hint_refiner import SCALE, HintRefiner, RefinerTrainConfig, refiner_input, train_refiner
from colorize_core.hints import rasterise
from colorize_core.inference import predict
from colorize_core.package import build_model, load_package, save_package
from colorize_core.settings import ColorizeConfig

MAX_HINTS, P_GEOMETRIC, RADII = 24, 0.15, (0.005, 0.02)
HOLDOUT = 0.1  # of the training photos: the run's own validation
_PKG = None


def _examples(job: tuple[int, str, np.ndarray, np.ndarray, int]) -> list[tuple[torch.Tensor, ...]]:
    """One photo's SETS examples on the refiner's grid: (x, spread result, truth)."""
    global _PKG
    i, package_dir, L, ab, sets = job
    torch.set_num_threads(1)
    if _PKG is None:
        _PKG = load_package(package_dir)
    s = next(samples([(L, ab)]))
    rng = np.random.default_rng(1000 + i)
    Lt = torch.from_numpy(s.L_in)[None, None]  # (1, 1, S, S)
    turn = int(rng.choice([1, 3]))  # quarter turns: the network cannot recall a photo it learnt upright
    Lr = torch.rot90(Lt, turn, (2, 3)).contiguous()
    prior = chroma_at_working_size(_PKG, Lr, predict(_PKG.model, Lr, False), ColorizeConfig().resolved(_PKG.decode))
    prior = torch.rot90(prior, -turn, (2, 3)).contiguous()  # (1, 2, S, S), as wrong as on an unseen photo
    truth = F.avg_pool2d(torch.from_numpy(s.ab).permute(2, 0, 1)[None], SCALE)[0]  # (2, h, w)
    out = []
    for _ in range(sets):
        n = int(min(MAX_HINTS, rng.geometric(P_GEOMETRIC)))
        radius = float(np.exp(rng.uniform(*np.log(RADII))))
        hints = simulated_curator_hints(s, n, rng, radius)
        hint_ab, mask = rasterise(hints, s.L.shape, s.L.shape)
        colour, reach = spread(s.L_in, hint_ab, mask)
        t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None]  # noqa: E731
        x, base = refiner_input(Lt, prior, t(colour), t(reach)[None], t(hint_ab), t(mask)[None], torch.tensor([n]))
        out.append((x[0], F.avg_pool2d(base, SCALE)[0], truth))
    return out


def held_out_mse(net: HintRefiner, x: torch.Tensor, base: torch.Tensor, truth: torch.Tensor, chunk: int = 64) -> float:
    with torch.no_grad():
        se = sum(float(((base[i : i + chunk] + net(x[i : i + chunk]) - truth[i : i + chunk]) ** 2).sum()) for i in range(0, len(x), chunk))
    return se / truth.numel()


def build_pool(package_dir: str, shards: str, sets: int) -> dict[str, torch.Tensor]:
    rows = load_split(sorted(glob.glob(os.path.join(shards, "*.parquet"))), open_local, "train")
    jobs = [(i, package_dir, np.asarray(L, np.float32), np.asarray(ab, np.float32), sets) for i, (L, ab) in enumerate(rows)]
    with Pool(min(2, os.cpu_count() or 1)) as pool:
        parts = [e for photo in pool.imap(_examples, jobs, chunksize=4) for e in photo]
    return {k: torch.stack([p[j] for p in parts]) for j, k in enumerate(("x", "base", "truth"))} | {"photos": torch.tensor(len(rows))}


def main(package_dir: str, shards: str, out: str, steps: str = "3000", sets: str = "8") -> None:
    os.makedirs(out, exist_ok=True)
    pool_path, ckpt = os.path.join(out, "pool.pt"), os.path.join(out, "refiner.pt")
    if not os.path.exists(pool_path):
        t0 = time.perf_counter()
        torch.save(build_pool(package_dir, shards, int(sets)), pool_path + ".tmp")
        os.replace(pool_path + ".tmp", pool_path)
        print(f"pool built in {time.perf_counter() - t0:.0f} s", flush=True)
    pool = torch.load(pool_path)
    photos = int(pool["photos"])
    held = torch.zeros(photos, dtype=torch.bool)
    held[torch.randperm(photos, generator=torch.Generator().manual_seed(0))[: max(1, int(HOLDOUT * photos))]] = True
    held = held.repeat_interleave(len(pool["x"]) // photos)  # (examples,): each photo's sets together
    train_part = [pool[k][~held] for k in ("x", "base", "truth")]
    cfg = RefinerTrainConfig(steps=int(steps))
    torch.manual_seed(cfg.seed)
    net = HintRefiner()
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    start, best = 0, {"loss": float("inf")}
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start, best = state["step"], state["best"]
        print(f"resumed at step {start}", flush=True)
    t0, recent = time.perf_counter(), []
    for step, loss in train_refiner(net, *train_part, cfg, opt, start):
        recent = (recent + [loss])[-100:]
        if step % 100 == 0:
            print(f"step {step}: loss {np.mean(recent):.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if step % 250 == 0 or step == cfg.steps:
            held_loss = held_out_mse(net, *(pool[k][held] for k in ("x", "base", "truth")))
            if held_loss < best["loss"]:
                best = {"loss": held_loss, "step": step, "net": {k: v.clone() for k, v in net.state_dict().items()}}
            print(f"step {step}: held-out photos {held_loss:.1f} (best {best['loss']:.1f} at step {best['step']})", flush=True)
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "best": best}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    net.load_state_dict(best["net"])
    pkg = load_package(package_dir)
    model = build_model(dataclasses.replace(pkg.model.cfg, hint_refiner=True), pkg.model.centres)
    model.load_state_dict({**pkg.model.state_dict(), **{f"hint_refiner.{k}": v for k, v in net.state_dict().items()}})
    pkg.model = model.eval()
    pkg.meta = pkg.meta | {
        "hint_refiner": {"steps": cfg.steps, "step": best["step"], "held_out_mse": round(best["loss"], 2), "examples": int((~held).sum()), "photos": photos}
    }
    save_package(os.path.join(out, "package"), pkg)
    print(f"package with the hint refiner: {os.path.join(out, 'package')}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
