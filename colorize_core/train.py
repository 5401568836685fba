"""The training loop as plain functions: rebalanced cross-entropy, then the NoGAN schedule.

Phases: 1) generator alone on the rebalanced cross-entropy; 2) the discriminator alone against the
frozen generator; 3) a short joint phase, generator loss = CE + gan.weight * adversarial. With
gan.weight = 0 only phase 1 runs. Tracking, storage and orchestration are the caller's (`Hooks`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .bins import BinSet
from .colorize import chroma_at_working_size
from .config import from_dict
from .data import AugmentConfig, ShardStream, load_split
from .decoding import annealed_mean
from .encoding import EncodingConfig, SoftEncoder
from .evaluation import Sample, evaluate, predicted, samples
from .hint_simulation import HintSimulation, simulate_hints
from .inference import PRECISIONS, Prediction, autocast, bf16_pays
from .losses import adversarial_loss, rebalanced_cross_entropy
from .models import Colorizer, DiscriminatorConfig, ModelConfig, PatchDiscriminator, with_hint_input
from .package import ColorizerPackage
from .settings import PAPER_TEMPERATURE, ColorizeConfig, DecodeConfig


@dataclass(frozen=True)
class GANConfig:
    weight: float = 0.0  # adversarial weight in the generator loss; 0 switches the GAN off
    disc_steps: int = 100  # phase 2: discriminator alone
    joint_steps: int = 200  # phase 3: both
    loss: str = "lsgan"  # lsgan | hinge
    lr: float = 2e-4
    temperature: float = PAPER_TEMPERATURE  # the differentiable annealed mean that turns logits into fake ab
    disc: DiscriminatorConfig = DiscriminatorConfig()


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # phase-1 generator steps
    batch_size: int = 16  # per process
    lr: float = 3e-4
    lr_schedule: str = "cosine"  # cosine (to lr / 20 at the end of phase 1) | constant
    weight_decay: float = 1e-3
    rebalance: bool = True  # weight pixels by the bin set's rebalancing weights
    seed: int = 0
    val_every: int = 200
    val_images: int = 32  # validation images scored each time
    checkpoint_every: int = 200
    select_metric: str = "auc_rebalanced"  # the model returned is the best validation by this
    loader_workers: int = 1  # per process; 0 loads in the training process. A resume keeps the run's count
    precision: str = "auto"  # auto (bfloat16 where measured faster, see inference.bf16_pays) | float32 | bfloat16
    augment: AugmentConfig = AugmentConfig()
    encoding: EncodingConfig = EncodingConfig()
    gan: GANConfig = GANConfig()
    hints: HintSimulation = HintSimulation()  # enabled: the model takes hints, trained with simulated ones

    @property
    def total_steps(self) -> int:
        return self.steps + (self.gan.disc_steps + self.gan.joint_steps if self.gan.weight > 0 else 0)

    def phase(self, step: int) -> str:
        if step < self.steps:
            return "generator"
        return "discriminator" if step < self.steps + self.gan.disc_steps else "joint"


def train_config_from_dict(d: dict) -> TrainConfig:
    """Inverse of `dataclasses.asdict` for TrainConfig (checkpoints and MLflow keep it as JSON)."""
    return from_dict(TrainConfig, d)


class Hooks:
    """Where the caller plugs in tracking and storage; every method may be left as is."""

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def validation(self, step: int, values: dict[str, float], preview: np.ndarray) -> None: ...

    def checkpoint(self, step: int, path: str) -> None: ...


@dataclass
class TrainResult:
    model: Colorizer  # the best by cfg.select_metric when validation ran, else the last
    steps: int
    best_step: int = 0
    validation: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    data_wait: float = 0.0  # fraction of step time spent waiting for the loader
    precision: str = "float32"  # what the loop ran in (chosen by measurement under precision=auto)

    def stats(self) -> dict[str, float | str]:
        """What a run reports: timing, steps, precision and the validation figures of the returned model."""
        return {
            "seconds": self.seconds,
            "data_wait": self.data_wait,
            "steps": self.steps,
            "best_step": self.best_step,
            "precision": self.precision,
            **self.validation,
        }


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@torch.no_grad()
def validate(model: Colorizer, bins: BinSet, val: list[Sample], encoder: SoftEncoder, bf16: bool = False) -> tuple[dict, np.ndarray]:
    """The evaluation protocol (evaluation.evaluate, the paper's annealed mean) on held-out images, the
    cross-entropy (plain and rebalanced), and a preview grid (gray | predicted | truth) of the first few."""
    if not val:
        return {}, np.zeros((1, 1, 3), np.uint8)
    model.eval()
    pkg = ColorizerPackage(model, bins)
    weights = torch.tensor(bins.weights, dtype=torch.float32)
    cfg = ColorizeConfig(decode=DecodeConfig())
    ce, ce_rb, rows = [], [], []

    def losses_and_previews(chunk: list[Sample], pred: Prediction) -> None:
        ab = torch.stack([torch.from_numpy(s.ab) for s in chunk])  # (B, H, W, 2)
        target = ab[:, 2::4, 2::4].round().to(torch.int8)  # (B, h, w, 2) the centre of each 4 x 4 cell
        idx, soft = encoder.encode(target)
        ce.append(rebalanced_cross_entropy(pred.logits, idx, soft, None).item())
        ce_rb.append(rebalanced_cross_entropy(pred.logits, idx, soft, weights[idx[..., 0]]).item())
        if len(rows) < 4:
            L = torch.stack([torch.from_numpy(s.L_in) for s in chunk])[:, None]
            pred_ab = chroma_at_working_size(pkg, L, pred, cfg)
            rows.extend(_preview_row(s, a) for s, a in zip(chunk[: 4 - len(rows)], pred_ab))

    values = evaluate(pkg, predicted(pkg, val, bf16=bf16), {"model": cfg}, baselines=False, on_batch=losses_and_previews)["model/model"]
    model.train()
    return dict(values, val_ce=float(np.mean(ce)), val_ce_rebalanced=float(np.mean(ce_rb))), np.concatenate(rows, axis=0)


def _preview_row(s: Sample, ab_pred: torch.Tensor) -> np.ndarray:
    from .color import lab_to_rgb

    def rgb(ab: np.ndarray) -> np.ndarray:
        return lab_to_rgb(np.concatenate([s.L[..., None], ab], -1))

    cells = [rgb(np.zeros_like(s.ab)), rgb(ab_pred.permute(1, 2, 0).numpy()), rgb(s.ab)]
    return (np.concatenate(cells, axis=1) * 255).round().astype(np.uint8)


@dataclass
class TrainingState:
    """Everything a checkpoint holds, so that a resumed run continues exactly: the networks, their
    optimisers, the step, each loader slot's place in the shard stream, the RNG, the configurations."""

    model: Colorizer
    opt_g: torch.optim.Optimizer
    disc: PatchDiscriminator | None = None
    opt_d: torch.optim.Optimizer | None = None
    step: int = 0
    position: list = field(default_factory=list)  # (world, workers, 2): (epoch, index) per rank and loader slot

    def save(self, path: str, model_cfg: ModelConfig, cfg: TrainConfig, bins: BinSet) -> None:
        disc = self.disc.module if hasattr(self.disc, "module") else self.disc
        state = {
            "model": self.model.state_dict(),
            "disc": disc.state_dict() if disc is not None else {},
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else {},
            "step": self.step,
            "position": torch.tensor(self.position, dtype=torch.long),
            "rng": torch.get_rng_state(),
            "model_config": dataclasses.asdict(model_cfg),
            "train_config": dataclasses.asdict(cfg),
            "bins_checksum": bins.checksum,
        }
        tmp = path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)  # a checkpoint is whole or absent

    def load(self, path: str, bins: BinSet, slots: int, device: torch.device) -> dict:
        """Continues from `path`; returns its train config (the precision it measured is replayed)."""
        state = torch.load(path, map_location=device, weights_only=True)
        if state["bins_checksum"] != bins.checksum:
            raise ValueError(f"{path} was trained with another bin set ({state['bins_checksum'][:12]})")
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.disc is not None and state["disc"]:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        saved = state["position"] if state["position"].dim() == 3 else state["position"][:, None]  # (world, 2): one slot
        if saved.shape[1] != slots:
            raise ValueError(f"{path} was trained with {saved.shape[1]} loader workers per process: resume with loader_workers={saved.shape[1]}")
        self.position = [[tuple(p) for p in rank_slots] for rank_slots in saved.tolist()]
        torch.set_rng_state(state["rng"])
        return state["train_config"]


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The generator's rate at `step`: cosine from lr down to lr / 20 over phase 1 (the GAN phases keep
    phase 1's last rate), or constant."""
    if cfg.lr_schedule != "cosine":
        return cfg.lr
    s = min(step, cfg.steps - 1)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))


def discriminator_step(st: TrainingState, L: torch.Tensor, ab: torch.Tensor, logits, hints, centres, cfg: TrainConfig, bf16: bool) -> float:
    """pix2pix's backward_D: the PatchGAN learns real (L, ab) from the generator's annealed mean."""
    with torch.no_grad(), autocast(L.device, bf16):
        if logits is None:  # discriminator phase: the frozen generator, its BatchNorm statistics untouched
            st.model.eval()
            fake_logits = st.model(L, hints).float()
            st.model.train()
        else:
            fake_logits = logits.detach().float()
        fake_ab = annealed_mean(fake_logits, centres, cfg.gan.temperature)
    real_ab, L_small = F.avg_pool2d(ab.to(L.device).float(), 4), F.avg_pool2d(L, 4)
    with autocast(L.device, bf16):
        d_loss = 0.5 * (
            adversarial_loss(st.disc(L_small, real_ab).float(), True, cfg.gan.loss)
            + adversarial_loss(st.disc(L_small, fake_ab).float(), False, cfg.gan.loss)
        )
    st.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    st.opt_d.step()
    return d_loss.item()


def generator_step(st: TrainingState, L, logits, idx, soft, pix_w, centres, cfg: TrainConfig, joint: bool) -> dict[str, float]:
    """pix2pix's backward_G: rebalanced soft cross-entropy, plus the adversarial term in the joint phase."""
    loss = rebalanced_cross_entropy(logits, idx, soft, pix_w)
    values = {"loss_ce": loss.item()}
    if joint:
        fake_ab = annealed_mean(logits.float(), centres, cfg.gan.temperature)
        for p in st.disc.parameters():
            p.requires_grad_(False)
        adv = adversarial_loss(st.disc(F.avg_pool2d(L, 4), fake_ab).float(), True, cfg.gan.loss)
        for p in st.disc.parameters():
            p.requires_grad_(True)
        loss = loss + cfg.gan.weight * adv
        values["loss_adv"] = adv.item()
    st.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    st.opt_g.step()
    return values | {"loss": loss.item()}


def train(
    bins: BinSet,
    shard_urls: list[str],
    open_file: Callable[[str], BinaryIO],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    checkpoint_dir: str,
    resume: str | None = None,
    hooks: Hooks = Hooks(),
    init_state: dict | None = None,
) -> TrainResult:
    """Trains a colorizer on the shards' train split; validates on their val split. Phase 1 trains the
    generator alone; with a GAN weight, phase 2 the discriminator alone, phase 3 both (NoGAN).

    `init_state` starts from existing weights (fine-tuning a released model on a collection)."""
    rank, world = _distributed()
    device = _device()
    torch.manual_seed(cfg.seed)
    if bins.weights is None:
        raise ValueError("the bin set has no rebalancing weights: build it with the bins flow")
    model_cfg = dataclasses.replace(model_cfg, hint_input=model_cfg.hint_input or cfg.hints.enabled)
    if init_state is not None and model_cfg.hint_input:
        init_state = with_hint_input(init_state)  # a model without hint input grows its hint channels
    model = Colorizer(dataclasses.replace(model_cfg, q=bins.q), torch.from_numpy(bins.centres)).to(device)
    disc = PatchDiscriminator(cfg.gan.disc).to(device) if cfg.gan.weight > 0 else None
    st = TrainingState(
        model,
        torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay),
        disc,
        torch.optim.Adam(disc.parameters(), lr=cfg.gan.lr, betas=(0.5, 0.999)) if disc is not None else None,
    )
    slots = max(1, cfg.loader_workers)
    st.position = [[(0, 0)] * slots for _ in range(world)]
    if init_state is not None and not resume:
        model.load_state_dict(init_state)
    if resume:
        resumed = st.load(resume, bins, slots, device)
        if cfg.precision == "auto":  # the precision the run measured at its start: a resumed run replays it exactly
            cfg = dataclasses.replace(cfg, precision=resumed.get("precision", "float32"))
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if disc is not None:
            st.disc = torch.nn.parallel.DistributedDataParallel(disc, device_ids=[device.index] if device.type == "cuda" else None)

    encoder = SoftEncoder(bins, cfg.encoding)
    weights = torch.tensor(bins.weights, dtype=torch.float32, device=device)
    centres = torch.from_numpy(bins.centres).to(device)
    stream = ShardStream(shard_urls, open_file, cfg.augment, cfg.seed, rank, world, start=st.position[rank], rotation=st.step)
    loader = DataLoader(
        stream,
        batch_size=cfg.batch_size,
        num_workers=cfg.loader_workers,
        persistent_workers=cfg.loader_workers > 0,
        prefetch_factor=4 if cfg.loader_workers else None,
    )
    val = list(samples(load_split(shard_urls, open_file, "val", cfg.val_images))) if rank == 0 else []
    bf16, precision = _precision(model, cfg, device)
    cfg = dataclasses.replace(cfg, precision=precision["precision"])  # checkpoints record what was chosen
    os.makedirs(checkpoint_dir, exist_ok=True)

    model.train()
    t_start, waited, last_val = time.perf_counter(), 0.0, {}
    best: tuple[float, int, dict, dict] | None = None  # (score, step, state dict, validation)
    batches = iter(loader)
    while st.step < cfg.total_steps:
        t0 = time.perf_counter()
        L, ab, epochs, index, slot = next(batches)
        waited += time.perf_counter() - t0
        L = L.to(device, non_blocking=True)
        idx, soft = (t.to(device) for t in encoder.encode(ab[:, :, 2::4, 2::4].permute(0, 2, 3, 1)))  # targets at the logits' resolution
        pix_w = weights[idx[..., 0]] if cfg.rebalance else None
        phase = cfg.phase(st.step)
        for group in st.opt_g.param_groups:
            group["lr"] = learning_rate(cfg, st.step)
        hints = simulated_hints(ab, cfg, st.step, rank, device) if model_cfg.hint_input else None
        with autocast(device, bf16):
            logits = ddp_model(L, hints) if phase != "discriminator" else None
        values: dict[str, float] = {}
        if phase in ("discriminator", "joint"):
            values["loss_d"] = discriminator_step(st, L, ab, logits, hints, centres, cfg, bf16)
        if phase in ("generator", "joint"):
            values |= generator_step(st, L, logits, idx, soft, pix_w, centres, cfg, joint=phase == "joint")
        st.step += 1
        mine = list(st.position[rank])
        mine[int(slot[-1])] = (int(epochs[-1]), int(index[-1]) + 1)
        st.position = _gather_position(mine, world)
        if rank == 0:
            values["epoch"] = float(epochs[-1])
            hooks.metrics(st.step, values)
            if st.step % cfg.val_every == 0 or st.step == cfg.total_steps:
                last_val, preview = validate(model, bins, val, encoder, bf16)
                hooks.validation(st.step, last_val, preview)
                score = last_val.get(cfg.select_metric)
                if score is not None and (best is None or score >= best[0]):
                    best = (score, st.step, {k: v.detach().clone() for k, v in model.state_dict().items()}, last_val)
            if st.step % cfg.checkpoint_every == 0 or st.step == cfg.total_steps:
                path = os.path.join(checkpoint_dir, f"step-{st.step:07d}.pt")
                st.save(path, model_cfg, cfg, bins)
                hooks.checkpoint(st.step, path)
    seconds = time.perf_counter() - t_start
    best_step = st.step
    if best is not None:
        model.load_state_dict(best[2])
        best_step, last_val = best[1], best[3]
    return TrainResult(
        model=model,
        steps=st.step,
        best_step=best_step,
        validation=last_val,
        seconds=seconds,
        data_wait=waited / max(seconds, 1e-9),
        precision=precision["precision"],
    )


def simulated_hints(ab: torch.Tensor, cfg: TrainConfig, step: int, rank: int, device: torch.device) -> torch.Tensor:
    """This step's simulated hints (B, 3, H, W) from the batch's true ab (B, 2, H, W) int8, drawn from
    a generator seeded by (seed, step, rank): a resumed run draws exactly the same."""
    g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * 64 + rank)
    return simulate_hints(ab.float(), cfg.hints, g).to(device)


def _precision(model: Colorizer, cfg: TrainConfig, device: torch.device) -> tuple[bool, dict]:
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision {cfg.precision!r}: choose one of {', '.join(PRECISIONS)}")
    if cfg.precision != "auto":
        return cfg.precision == "bfloat16", {"precision": cfg.precision, "measured": False}
    g = torch.Generator().manual_seed(0)  # not the global generator: an exact resume must not see this draw
    example = (torch.rand(cfg.batch_size, 1, cfg.augment.crop, cfg.augment.crop, generator=g) * 100).to(device)
    return bf16_pays(model, example, train=True)


def _gather_position(mine: list[tuple[int, int]], world: int) -> list[list[tuple[int, int]]]:
    if world == 1:
        return [mine]
    out: list = [None] * world
    dist.all_gather_object(out, mine)
    return [[tuple(p) for p in slots] for slots in out]


def steps_for_epochs(epochs: float, train_rows: int, batch_size: int, world: int = 1) -> int:
    return max(1, math.ceil(epochs * train_rows / (batch_size * world)))
