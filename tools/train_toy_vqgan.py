"""Train the toy VQGAN for reconstruction on synthetic scenes, on a CPU, in a few minutes.

    python -m tools.train_toy_vqgan           # writes vqclip/toy/weights/toy_vqgan.{yaml,ckpt}

The architecture is taming's own Encoder/Decoder/VectorQuantizer2 (through `vqclip.models.vqgan`)
at a small width with a small codebook. The loss is L1 + L2 on pixels plus taming's codebook and
commitment terms (no perceptual or GAN loss: the scenes are flat colours and sharp edges).
Codes left unused are restarted on encoder outputs, so a small codebook is fully used.
The files are the published formats: a taming `model.yaml` and a Lightning-style `.ckpt` whose
`state_dict` has taming's key names; `vqclip.models.vqgan.load_vqgan` loads them.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from vqclip.toy.data import make_dataset
from vqclip.toy.metrics import images_to_tensor, psnr
from vqclip.toy.repro import reproducible

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "vqclip" / "toy" / "weights"

# taming ddconfig: factor 4 (ch_mult has 3 levels); no attention except the middle block taming
# always has. Why 64 channels: taming normalizes with GroupNorm(32 groups) right before the last
# conv of encoder and decoder; at 32 channels each group is one channel, and a flat-coloured
# region normalizes to zero, so its colour cannot get through. Two channels per group keep it.
# num_res_blocks 0 (the decoder still has one ResnetBlock per level) keeps training on a CPU short.
TOY_DDCONFIG = {
    "double_z": False,
    "z_channels": 32,
    "resolution": 64,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 64,
    "ch_mult": [1, 1, 1],
    "num_res_blocks": 0,
    "attn_resolutions": [],
    "dropout": 0.0,
}
TOY_N_EMBED = 512
TOY_EMBED_DIM = 32


@dataclass
class TrainVqganConfig:
    """Settings of one toy VQGAN training run."""

    steps: int = 600  # about 8 minutes on 2 idle CPU cores
    batch_size: int = 16  # crops per step; whole frames come 4 to a step (the same pixels)
    ae_steps: int = 100  # plain autoencoder first, so the k-means codebook starts on useful features
    crop: int = 32  # train on random crops (4x cheaper) ...
    full_size_after: float = 0.9  # ... then on whole 64x64 scenes for the last 10 %, so GroupNorm sees full frames
    lr: float = 1e-3
    warmup: int = 20
    n_train: int = 12000
    restart_every: int = 25  # steps between dead-code restarts and log lines (no restarts on full frames)
    seed: int = 0
    eval_seed: int = 2  # held-out scenes come from another seed
    n_eval: int = 256
    threads: int = 2


def taming_config() -> dict:
    """The toy VQGAN's taming model.yaml as a dict (VQModel; DummyLoss: there is no training loss to build)."""
    return {
        "model": {
            "base_learning_rate": TrainVqganConfig.lr,
            "target": "taming.models.vqgan.VQModel",
            "params": {
                "embed_dim": TOY_EMBED_DIM,
                "n_embed": TOY_N_EMBED,
                "monitor": "val/rec_loss",
                "ddconfig": dict(TOY_DDCONFIG),
                "lossconfig": {"target": "taming.modules.losses.DummyLoss"},
            },
        }
    }


def _restart_dead_codes(model: torch.nn.Module, usage: torch.Tensor, feats: torch.Tensor, generator: torch.Generator) -> int:
    """Move codes that were never picked onto random encoder outputs of this batch (plus a little noise)."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    flat = feats.detach().movedim(1, -1).reshape(-1, feats.shape[1])
    pick = torch.randint(0, flat.shape[0], (len(dead),), generator=generator)
    noise = 0.01 * flat.std() * torch.randn(len(dead), flat.shape[1], generator=generator)
    with torch.no_grad():
        model.quantize.embedding.weight[dead] = flat[pick] + noise
    return len(dead)


@torch.no_grad()
def _kmeans_codebook(model: torch.nn.Module, x: torch.Tensor, generator: torch.Generator, iters: int = 8) -> None:
    """Start the codebook at k-means centres of encoder outputs (far better than taming's tiny uniform init)."""
    flat = model.quant_conv(model.encoder(x)).movedim(1, -1).reshape(-1, model.embed_dim)
    centres = flat[torch.randperm(flat.shape[0], generator=generator)[: model.n_embed]].clone()
    for _ in range(iters):
        assign = torch.cdist(flat, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, flat)
        counts = torch.bincount(assign, minlength=model.n_embed).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    model.quantize.embedding.weight.copy_(centres)


def _batch(pool: torch.Tensor, cfg: TrainVqganConfig, size: int, generator: torch.Generator, n: int | None = None) -> torch.Tensor:
    """Random scenes, randomly cropped to `size` and flipped, in [-1, 1] as taming expects."""
    n = n or cfg.batch_size
    idx = torch.randint(0, pool.shape[0], (n,), generator=generator)
    x = images_to_tensor(pool[idx].numpy())
    if size < x.shape[-1]:
        offsets = torch.randint(0, x.shape[-1] - size + 1, (n, 2), generator=generator).tolist()
        x = torch.stack([img[:, oy : oy + size, ox : ox + size] for img, (oy, ox) in zip(x, offsets)])
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x) * 2 - 1


def train(cfg: TrainVqganConfig, log=print) -> tuple[torch.nn.Module, int]:
    """Train the toy VQGAN from scratch; returns the model (eval mode) and the steps taken.

    Phases: a plain autoencoder (no quantization) for `ae_steps`, then a k-means codebook and
    VQ training with dead-code restarts, then the last `1 - full_size_after` on whole scenes.
    """
    with reproducible(cfg.seed, cfg.threads) as generator:
        return _train(cfg, generator, log)


def _train(cfg: TrainVqganConfig, generator: torch.Generator, log) -> tuple[torch.nn.Module, int]:
    from vqclip.models.vqgan import build_vqgan

    images, _ = make_dataset(cfg.n_train, seed=cfg.seed)
    pool = torch.from_numpy(images)  # uint8, (N, H, W, 3): a quarter of the memory of float
    model = build_vqgan(taming_config())
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    usage = torch.zeros(model.n_embed)
    start, cpu_start = time.time(), time.process_time()
    full_from = int(cfg.full_size_after * cfg.steps)
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        if step == cfg.ae_steps:
            _kmeans_codebook(model, _batch(pool, cfg, cfg.crop, generator, n=128), generator)
        if step < full_from:
            x = _batch(pool, cfg, cfg.crop, generator)
        else:
            x = _batch(pool, cfg, pool.shape[1], generator, n=max(1, cfg.batch_size * cfg.crop**2 // pool.shape[1] ** 2))
        feats = model.quant_conv(model.encoder(x))
        if step < cfg.ae_steps:
            z_q, codebook_loss, indices = feats, torch.zeros(()), None
        else:
            z_q, codebook_loss, (_, _, indices) = model.quantize(feats)
        rec = model.decoder(model.post_quant_conv(z_q))
        rec_loss = (rec - x).abs().mean() + F.mse_loss(rec, x)
        loss = rec_loss + codebook_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if indices is not None:
            usage += torch.bincount(indices.flatten(), minlength=model.n_embed)
        if (step + 1) % cfg.restart_every == 0:
            restarted = 0
            if indices is not None and step < full_from:
                restarted = _restart_dead_codes(model, usage, feats, generator)
            p = rec.detach().add(1).div(2)
            log(
                f"step {step + 1:4d}  rec {rec_loss.item():.4f}  psnr {psnr(p, x.add(1).div(2)):.1f} dB  "
                f"codes used {int((usage > 0).sum())}/{model.n_embed}  restarted {restarted}  "
                f"{time.time() - start:.0f}s wall, {time.process_time() - cpu_start:.0f}s cpu"
            )
            usage.zero_()
    return model.eval().requires_grad_(False), cfg.steps


def save(model: torch.nn.Module, out_dir: Path, global_step: int) -> tuple[Path, Path]:
    """Write `toy_vqgan.yaml` (taming VQModel config) and `toy_vqgan.ckpt` (Lightning-style dict)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path, ckpt_path = out_dir / "toy_vqgan.yaml", out_dir / "toy_vqgan.ckpt"
    config_path.write_text(yaml.safe_dump(taming_config(), sort_keys=False, default_flow_style=False))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    # only tensors and plain numbers: loads with torch.load(weights_only=True) as well
    torch.save({"epoch": 0, "global_step": global_step, "state_dict": state}, ckpt_path)
    return config_path, ckpt_path


@torch.no_grad()
def evaluate(model: torch.nn.Module, n: int = 256, seed: int = 2, batch_size: int = 64) -> float:
    """Reconstruction PSNR (dB) of a `vqclip.models.vqgan.VQGAN` on `n` held-out scenes."""
    images, _ = make_dataset(n, seed=seed)
    x = images_to_tensor(images)
    rec = torch.cat([model.decode(model.encode(x[i : i + batch_size])) for i in range(0, n, batch_size)])
    return psnr(rec, x)


def main(argv: list[str] | None = None) -> int:
    """Command line: train, save, reload the files with load_vqgan and report held-out PSNR."""
    from vqclip.models.vqgan import load_vqgan

    defaults = TrainVqganConfig()
    parser = argparse.ArgumentParser(prog="python -m tools.train_toy_vqgan", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for toy_vqgan.yaml and toy_vqgan.ckpt")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    args = parser.parse_args(argv)
    cfg = TrainVqganConfig(steps=args.steps, seed=args.seed, threads=args.threads)
    start = time.time()
    model, steps = train(cfg)
    minutes = (time.time() - start) / 60
    config_path, ckpt_path = save(model, args.out, steps)
    value = evaluate(load_vqgan(config_path, ckpt_path), n=cfg.n_eval, seed=cfg.eval_seed)
    size_mb = ckpt_path.stat().st_size / 1e6
    print(f"trained in {minutes:.1f} min; wrote {config_path} and {ckpt_path} ({size_mb:.1f} MB)")
    print(f"held-out reconstruction PSNR: {value:.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
