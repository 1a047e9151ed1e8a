"""Train the toy CLIP contrastively on synthetic scenes, on a CPU, in a few minutes.

    python -m tools.train_toy_clip            # writes vqclip/toy/weights/toy_clip.{json,pt}

The model is a plain open_clip `CLIP` built from an open_clip model config (the JSON written
beside the weights), with open_clip's own BPE tokenizer, so the perceptor loads it like any
other open_clip model. Images are augmented the way the render loop's cutouts are (random
crops, flips, small rotations, noise), so its gradients are a usable guide, not only a classifier.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqclip.toy.data import all_captions, make_dataset
from vqclip.toy.metrics import images_to_tensor, zero_shot_accuracy
from vqclip.toy.repro import reproducible

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "vqclip" / "toy" / "weights"

# open_clip model config: a ModifiedResNet image tower (CLIP's RN50 design, one bottleneck per stage,
# width 16, 64 px): a CNN learns "star" vs "circle" in minutes where a ViT of the same cost did not
# (61 % shape accuracy after 800 steps vs 98 %). vocab_size is open_clip's BPE vocabulary, whose
# embedding is most of the weights (stored in fp16). Captions are ~11 tokens, so a context of 16
# (open_clip's tokenizer reads it from this config) makes the text tower 5x cheaper than 77.
TOY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32, "patch_size": None},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
# open_clip's default preprocessing (OpenAI mean/std): the perceptor applies it, so training does too.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class TrainClipConfig:
    """Settings of one toy CLIP training run."""

    steps: int = 800  # about 4 minutes on 2 idle CPU cores (6 on one)
    batch_size: int = 128
    lr: float = 2e-3  # tiny models like a large learning rate
    warmup: int = 60  # steps of linear warm-up before the cosine decay
    weight_decay: float = 0.05  # not applied to embeddings, norms, biases, logit_scale
    n_train: int = 20000  # scenes in the training pool (augmentation makes each step new)
    seed: int = 0
    eval_seed: int = 1  # held-out scenes come from another seed
    n_eval: int = 500
    threads: int = 2


def build_toy_clip(config: dict | None = None) -> torch.nn.Module:
    """A randomly initialised open_clip CLIP from an open_clip model config (default: the toy's)."""
    from open_clip.model import CLIP

    return CLIP(**(config or TOY_CLIP_CONFIG))


def tokenize(texts: list[str], context_length: int | None = None) -> torch.Tensor:
    """open_clip's BPE tokenizer at the config's context length."""
    import open_clip

    return open_clip.tokenize(texts, context_length=context_length or TOY_CLIP_CONFIG["text_cfg"]["context_length"])


def normalize(x01: torch.Tensor) -> torch.Tensor:
    """Apply the model's mean/std to images in [0, 1]."""
    mean = torch.tensor(MEAN, dtype=x01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - mean) / std


def augment(x01: torch.Tensor, centres: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
    """Random crops resized to `size` that keep the shape's centre; flips, small affine, jitter, noise (like cutouts)."""
    b = x01.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    side = u(0.3, 1.0).sqrt()  # crop area 30-100 % of the image
    aspect = u(math.log(0.8), math.log(1.25)).exp()
    w = (side * aspect.sqrt()).clamp(max=1.0)
    h = (side / aspect.sqrt()).clamp(max=1.0)
    # crop centre (in [0, 1]): inside the image and with the shape's centre well inside the crop
    cx, cy = centres[:, 0], centres[:, 1]
    lo_x = torch.maximum(w / 2, cx - 0.3 * w)
    hi_x = torch.minimum(1 - w / 2, cx + 0.3 * w)
    lo_y = torch.maximum(h / 2, cy - 0.3 * h)
    hi_y = torch.minimum(1 - h / 2, cy + 0.3 * h)
    ux = lo_x + (hi_x - lo_x).clamp(min=0) * torch.rand(b, generator=generator)
    uy = lo_y + (hi_y - lo_y).clamp(min=0) * torch.rand(b, generator=generator)
    angle = u(-15.0, 15.0) * math.pi / 180  # as the render's kornia RandomAffine: 15 deg, shear 5 deg
    shear = u(-5.0, 5.0) * math.pi / 180
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
    theta = torch.stack(
        [
            torch.stack([w * cos * flip, h * (cos * tan - sin), 2 * ux - 1], dim=1),
            torch.stack([w * sin * flip, h * (sin * tan + cos), 2 * uy - 1], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    out = F.grid_sample(x01, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # mild brightness and contrast (colour names must survive them), as the render's ColorJitter
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * u(0.93, 1.07).view(b, 1, 1, 1) + mean * u(0.93, 1.07).view(b, 1, 1, 1)
    sigma = u(0.0, 0.1) * (torch.rand(b, generator=generator) < 0.6)
    out = out + sigma.view(b, 1, 1, 1) * torch.randn(out.shape, generator=generator)
    return out.clamp(0, 1)


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss where every caption in `txt` is a candidate and images sharing a caption are all positives.

    `txt` holds one embedding per caption (here: every caption the generator can make, so each
    image also meets its hard negatives, the captions that differ in one word); `labels[i]` is
    image i's row in it. Text-to-image runs over the captions present in the batch.
    """
    logits = scale * img @ txt.T  # (B, C)
    loss_i2t = F.cross_entropy(logits, labels)
    present, inverse = torch.unique(labels, return_inverse=True)
    target = F.one_hot(inverse, len(present)).T.float()  # (U, B)
    target = target / target.sum(dim=1, keepdim=True)
    loss_t2i = -(target * F.log_softmax(logits[:, present].T, dim=1)).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name or "token" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(cfg: TrainClipConfig, log=print, model_config: dict | None = None) -> torch.nn.Module:
    """Train the toy CLIP from scratch; deterministic for a given config and thread count."""
    with reproducible(cfg.seed, cfg.threads) as generator:
        return _train(cfg, generator, log, model_config or TOY_CLIP_CONFIG)


def _train(cfg: TrainClipConfig, generator: torch.Generator, log, model_config: dict) -> torch.nn.Module:
    images, scenes = make_dataset(cfg.n_train, seed=cfg.seed)
    pool = torch.from_numpy(images)  # uint8, (N, H, W, 3): a quarter of the memory of float
    centres = torch.tensor([(s.cx, s.cy) for s in scenes], dtype=torch.float32)
    captions = all_captions()
    caption_id = torch.tensor([captions.index(s.caption) for s in scenes])
    all_tokens = tokenize(captions, model_config["text_cfg"].get("context_length", 77))

    model = build_toy_clip(model_config)
    model.train()
    input_size = model_config["vision_cfg"]["image_size"]
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    start, cpu_start = time.time(), time.process_time()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, cfg.n_train, (cfg.batch_size,), generator=generator)
        x = normalize(augment(images_to_tensor(pool[idx].numpy()), centres[idx], generator, input_size))
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(all_tokens), dim=-1)
        loss = contrastive_loss(img, txt, caption_id[idx], model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"step {step:4d}  loss {loss.item():.3f}  lr {lr:.2e}  {time.time() - start:.0f}s wall, {time.process_time() - cpu_start:.0f}s cpu")
    return model.eval()


def save(model: torch.nn.Module, out_dir: Path, model_config: dict | None = None) -> tuple[Path, Path]:
    """Write the open_clip model config (`toy_clip.json`) and fp16 weights (`toy_clip.pt`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = out_dir / "toy_clip.json", out_dir / "toy_clip.pt"
    config_path.write_text(json.dumps(model_config or TOY_CLIP_CONFIG, indent=4) + "\n")
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    torch.save(state, weights_path)
    return config_path, weights_path


def load_toy_clip(out_dir: Path = WEIGHTS_DIR) -> torch.nn.Module:
    """Load the saved toy CLIP as an fp32 open_clip CLIP (frozen), for evaluation."""
    model = build_toy_clip(json.loads((out_dir / "toy_clip.json").read_text()))
    state = torch.load(out_dir / "toy_clip.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


def evaluate(model: torch.nn.Module, n: int = 500, seed: int = 1) -> dict[str, float]:
    """Zero-shot accuracy of a raw open_clip model on `n` held-out scenes."""
    images, scenes = make_dataset(n, seed=seed)
    context_length = model.positional_embedding.shape[0]

    size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size

    def encode_image(x01: torch.Tensor) -> torch.Tensor:
        x01 = F.interpolate(x01, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return F.normalize(model.encode_image(normalize(x01)), dim=-1)

    def encode_text(texts: list[str]) -> torch.Tensor:
        return F.normalize(model.encode_text(tokenize(texts, context_length)), dim=-1)

    return zero_shot_accuracy(encode_image, encode_text, images, scenes)


def main(argv: list[str] | None = None) -> int:
    """Command line: train, save, reload the saved file and report held-out accuracy."""
    defaults = TrainClipConfig()
    parser = argparse.ArgumentParser(prog="python -m tools.train_toy_clip", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for toy_clip.json and toy_clip.pt")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--config", type=Path, default=None, help="train another open_clip model config (.json) instead")
    args = parser.parse_args(argv)
    cfg = TrainClipConfig(steps=args.steps, seed=args.seed, threads=args.threads)
    model_config = json.loads(args.config.read_text()) if args.config else TOY_CLIP_CONFIG
    start = time.time()
    model = train(cfg, model_config=model_config)
    minutes = (time.time() - start) / 60
    config_path, weights_path = save(model, args.out, model_config)
    acc = evaluate(load_toy_clip(args.out), n=cfg.n_eval, seed=cfg.eval_seed)
    size_mb = weights_path.stat().st_size / 1e6
    print(f"trained in {minutes:.1f} min; wrote {config_path} and {weights_path} ({size_mb:.1f} MB)")
    print("held-out zero-shot accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
