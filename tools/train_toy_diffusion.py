"""Train the toy diffusion pack (a tiny Stable Diffusion + AnimateDiff motion adapter) on synthetic scenes, on a CPU.

    python -m tools.train_toy_diffusion vae       # AutoencoderKL, 64x64 -> 4x16x16
    python -m tools.train_toy_diffusion decoder   # (optional) fine-tune its decoder on whole frames
    python -m tools.train_toy_diffusion sd        # tokenizer + CLIPTextModel + UNet2DConditionModel, jointly
    python -m tools.train_toy_diffusion motion    # MotionAdapter on moving clips, the UNet frozen
    python -m tools.train_toy_diffusion eval      # text-to-image on the held-out captions, ranked by the toy CLIP

The shipped UNet and text encoder are three `sd` rounds (29.8 min in all on the shared 2-core CPU):

    python -m tools.train_toy_diffusion sd --offset-noise 0                                # 1500 steps
    python -m tools.train_toy_diffusion sd --resume --seed 1 --steps 1200 --offset-noise 0
    python -m tools.train_toy_diffusion sd --resume --seed 2 --steps 1500                  # offset noise 0.15

The first two rounds learnt shapes but took colours from the starting noise (10 % of held-out captions
ranked first); the offset-noise round fixed that (80 %). A fresh run may use offset noise from the start.
The shipped VAE is `vae` (12.7 min) then `decoder` (1.8 min); the shipped adapter is one `motion` run
(1500 steps of 2 clips x 16 frames, 19.1 min). Times are wall time on the shared CPU, 1 thread.
An earlier adapter, trained on 8-frame clips whose colour morphed slowly while the caption switched at
half-time, blended subjects into each other and ranked 44 % of animatediff_toy's frames to their prompt;
clips whose caption is true of every frame (a switch on one frame) fixed that.

Everything is written to `vqclip/toy/weights/diffusion/` in diffusers' own layout (config json +
fp16 safetensors per component, a `model_index.json`), so diffusers' `from_pretrained` paths load
it like a hub model. Each stage reads the previous stages from that folder. The 40 held-out
captions (`HELD_OUT_CAPTIONS`) never appear in the text-to-image training data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import string
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqclip.toy.data import COLOURS, SHAPES, Scene, all_captions, render_scene, sample_scene
from vqclip.toy.metrics import images_to_tensor
from vqclip.toy.repro import reproducible

OUT_DIR = Path(__file__).resolve().parents[1] / "vqclip" / "toy" / "weights" / "diffusion"
SIZE = 64
CONTEXT = 16  # tokens: a toy caption is at most 9 with the start and end tokens
TEXT_WIDTH = 64  # the text encoder's hidden size = the UNet's cross_attention_dim
HELD_OUT_SEED = 12


def held_out_captions(n: int = 40, seed: int = HELD_OUT_SEED) -> list[str]:
    """The captions kept out of text-to-image training (the t2i quality bar samples them)."""
    captions = all_captions()
    pick = np.random.default_rng(seed).choice(len(captions), size=n, replace=False)
    return [captions[i] for i in sorted(pick)]


HELD_OUT_CAPTIONS = held_out_captions()


# ---------------------------------------------------------------- tokenizer

def toy_words() -> list[str]:
    """Every word of the toy world's captions, in a fixed order."""
    return ["a", "an", *COLOURS, *SHAPES, "on", "background"]


def build_bpe(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style BPE vocabulary and merge list in which each of `words` becomes one token.

    Printable ASCII characters (bare and word-final `</w>`) keep any other text encodable, piece by
    piece. Merges are appended word by word: a word is first split by the merges so far, then its
    pieces are joined left to right by new merges; new merges rank after all earlier ones, so they
    never fire inside a word that the earlier merges already join.
    """
    chars = [c for c in string.ascii_lowercase + string.digits + string.punctuation]
    tokens: list[str] = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = _apply_merges(word, merges)
        while len(pieces) > 1:
            merges.append((pieces[0], pieces[1]))
            joined = pieces[0] + pieces[1]
            if joined not in tokens:
                tokens.append(joined)
            pieces = [joined, *pieces[2:]]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _apply_merges(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """BPE as CLIPTokenizer does it: repeatedly join the adjacent pair of lowest merge rank."""
    ranks = {m: i for i, m in enumerate(merges)}
    pieces = [*word[:-1], word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        rank, i = min(pairs)
        if rank == math.inf:
            break
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2 :]]
    return pieces


def build_tokenizer(folder: Path):
    """Write vocab.json + merges.txt into `folder` and load them as a CLIPTokenizer (saved in full there)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_bpe(toy_words())
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=1) + "\n")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tok = CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=CONTEXT, pad_token="<|endoftext|>"
    )
    tok.save_pretrained(folder)
    return tok


def text_encoder_config(tokenizer):
    """The toy CLIPTextModel's config: 2 layers of width 64 over the toy vocabulary."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        projection_dim=TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids padded to the context length, as StableDiffusionPipeline pads them."""
    return tokenizer(texts, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="pt").input_ids


# ---------------------------------------------------------------- models

def build_vae():
    """AutoencoderKL: 3 levels (4x down), 4 latent channels; no attention (flat colours need none)."""
    from diffusers import AutoencoderKL

    # 16 groups at 32 channels: two channels per group, so a flat colour survives the last GroupNorm
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=SIZE,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 32, 64), layers_per_block=1, norm_num_groups=16,
        mid_block_add_attention=False, force_upcast=False,
    )


def build_unet():
    """UNet2DConditionModel on 16x16 latents: a plain block at 16 px, attention (self + caption) at 8 and 4 px."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=SIZE // 4, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4,  # diffusers' legacy name: 4 heads
    )


def build_scheduler():
    """The DDPM noise schedule of Stable Diffusion (scaled linear betas, epsilon prediction); DDIM samples it."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
    )


def build_motion_adapter():
    """MotionAdapter with temporal modules matching the toy UNet's blocks (one layer each, 4 heads)."""
    from diffusers import MotionAdapter

    return MotionAdapter(
        block_out_channels=(32, 64, 64), motion_layers_per_block=1, motion_num_attention_heads=4,
        motion_norm_num_groups=16, motion_max_seq_length=32, use_motion_mid_block=True,
    )


def save_fp16(model, folder: Path) -> None:
    """save_pretrained in fp16 safetensors (the pack's size budget); the caller's model stays fp32."""
    model.to(torch.float16)
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        model.to(torch.float32)
    config = folder / "config.json"  # a reloaded model remembers where it came from: no local paths in the package
    data = json.loads(config.read_text())
    if data.pop("_name_or_path", None) is not None:
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_model_index(out: Path) -> None:
    """model_index.json as a StableDiffusionPipeline folder has it (no safety checker, no feature extractor)."""
    import diffusers

    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def load_components(out: Path = OUT_DIR, parts=("vae", "text_encoder", "tokenizer", "unet", "scheduler")) -> dict:
    """Load the saved components in fp32 through diffusers/transformers from_pretrained, as the engines do."""
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    loaders = {
        "vae": lambda p: AutoencoderKL.from_pretrained(p, dtype=torch.float32),
        "text_encoder": lambda p: CLIPTextModel.from_pretrained(p, dtype=torch.float32),
        "tokenizer": CLIPTokenizer.from_pretrained,
        "unet": lambda p: UNet2DConditionModel.from_pretrained(p, dtype=torch.float32),
        "scheduler": DDIMScheduler.from_pretrained,
        "motion_adapter": lambda p: MotionAdapter.from_pretrained(p, dtype=torch.float32),
    }
    result = {}
    for name in parts:
        result[name] = loaders[name](out / name)
        if hasattr(result[name], "eval"):
            result[name].eval().requires_grad_(False)
    return result


# ---------------------------------------------------------------- data

def scene_pool(n: int, seed: int, exclude: set[str] = frozenset()) -> tuple[np.ndarray, list[Scene]]:
    """`n` scenes from `seed` whose captions are not in `exclude`: (n, 64, 64, 3) uint8 and the scenes."""
    rng = np.random.default_rng(seed)
    scenes: list[Scene] = []
    while len(scenes) < n:
        scene = sample_scene(rng)
        if scene.caption not in exclude:
            scenes.append(scene)
    images = np.stack([render_scene(s, SIZE) for s in scenes]) if scenes else np.zeros((0, SIZE, SIZE, 3), np.uint8)
    return images, scenes


MOTIONS = ("translate", "zoom", "morph")


def make_clip(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, list[str], str]:
    """A short clip of one scene in motion: (frames, 64, 64, 3) uint8, each frame's caption, and the motion kind.

    translate: the shape slides in a straight line to the farthest of four random places it fits; zoom: its size changes by
    1.25-1.6x either way; morph: on one frame the shape's colour, or the shape itself, switches to
    another and the caption switches on that same frame (what a prompt timeline's scene line asks
    for), while the shape drifts half as far as a translate. Every frame's caption is true of it, so
    the adapter learns to follow each frame's prompt, and never to blend one subject into another.
    """
    scene = sample_scene(rng)
    kind = MOTIONS[rng.integers(len(MOTIONS))]
    t = np.linspace(0.0, 1.0, frames)
    if kind == "zoom":
        factor = float(rng.uniform(1.25, 1.6)) ** (1 if rng.random() < 0.5 else -1)
        room = 2 * min(scene.cx, 1 - scene.cx, scene.cy, 1 - scene.cy)  # largest size that stays inside
        end = float(np.clip(scene.size * factor, 0.2, max(0.2, room)))
        seq = [dataclasses.replace(scene, size=scene.size * (end / scene.size) ** s) for s in t]
        return np.stack([render_scene(s, SIZE) for s in seq]), [scene.caption] * frames, kind
    # a straight path to the farthest of four places where the shape still fits inside the frame
    half = scene.size / 2
    ends = rng.uniform(half, 1 - half, size=(4, 2))
    ex, ey = (float(v) for v in ends[np.argmax(np.hypot(ends[:, 0] - scene.cx, ends[:, 1] - scene.cy))])
    if kind == "morph":
        ex, ey = (scene.cx + ex) / 2, (scene.cy + ey) / 2
    seq = [dataclasses.replace(scene, cx=scene.cx + (ex - scene.cx) * s, cy=scene.cy + (ey - scene.cy) * s) for s in t]
    if kind == "translate":
        return np.stack([render_scene(s, SIZE) for s in seq]), [scene.caption] * frames, kind
    switch = int(rng.integers(1, frames))  # the first frame of the new subject
    if rng.random() < 0.5:
        names = [c for c in COLOURS if c not in (scene.colour, scene.background)]
        changed = {"colour": names[rng.integers(len(names))]}
    else:
        changed = {"shape": str(rng.choice([s for s in SHAPES if s != scene.shape]))}
    seq = [dataclasses.replace(s, **changed) if i >= switch else s for i, s in enumerate(seq)]
    return np.stack([render_scene(s, SIZE) for s in seq]), [s.caption for s in seq], kind


def to_model(x_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1] (the VAE's range)."""
    return images_to_tensor(x_uint8) * 2 - 1


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """Posterior means of the VAE for uint8 images, unscaled."""
    return torch.cat([vae.encode(to_model(images[i : i + batch])).latent_dist.mean for i in range(0, len(images), batch)])


def _lr(base: float, step: int, steps: int, warmup: int) -> float:
    return base * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


def _log_line(step: int, loss: float, lr: float, start: float) -> str:
    return f"step {step:5d}  loss {loss:.4f}  lr {lr:.2e}  {time.time() - start:.0f}s"


def _train_loop(opt, cfg, loss_at, log, every: int, clip: list | None = None) -> None:
    """The loop every stage shares: warm-up + cosine lr (times a group's "scale"), loss_at(step), backward,
    an optional grad-norm clip to 1, the optimizer step, and a log line every ``every`` steps and at the end."""
    start = time.time()
    for step in range(cfg.steps):
        lr = _lr(cfg.lr, step, cfg.steps, cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("scale", 1.0)
        loss = loss_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(clip, 1.0)
        opt.step()
        if step % every == 0 or step == cfg.steps - 1:
            log(_log_line(step, loss.item(), lr, start))


# ---------------------------------------------------------------- stage 1: VAE

@dataclass
class TrainVaeConfig:
    """Settings of the toy AutoencoderKL run."""

    steps: int = 1000
    batch_size: int = 16
    crop: int = 32  # random crops (4x cheaper) ...
    full_size_after: float = 0.9  # ... then whole scenes, so GroupNorm sees full frames before the end
    lr: float = 2e-3
    warmup: int = 50
    kl_weight: float = 1e-6  # as SD's VAE: a near-deterministic code, the KL only keeps it bounded
    n_train: int = 8000
    seed: int = 0
    threads: int = 1


def train_vae(cfg: TrainVaeConfig, log=print):
    """Train the AutoencoderKL (L1 + L2 + a small KL); deterministic for a config and thread count."""
    with reproducible(cfg.seed, cfg.threads) as g:
        images, _ = scene_pool(cfg.n_train, cfg.seed)
        pool = torch.from_numpy(images)
        vae = build_vae().train()
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)

        def loss_at(step):
            x = to_model(pool[torch.randint(0, len(pool), (cfg.batch_size,), generator=g)].numpy())
            if step < cfg.full_size_after * cfg.steps:
                i, j = (int(v) for v in torch.randint(0, SIZE - cfg.crop + 1, (2,), generator=g))
                x = x[:, :, i : i + cfg.crop, j : j + cfg.crop]
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g)
            rec = vae.decode(z).sample
            return F.l1_loss(rec, x) + F.mse_loss(rec, x) + cfg.kl_weight * posterior.kl().mean()

        _train_loop(opt, cfg, loss_at, log, every=100)
        vae.eval().requires_grad_(False)
        # SD's convention: scale latents to unit variance for the UNet; the factor lives in the VAE config
        z = encode_latents(vae, images[:1024])
        vae.register_to_config(scaling_factor=float(1.0 / z.std()))
        return vae


@dataclass
class TrainDecoderConfig:
    """Settings of the decoder fine-tune: whole frames, the encoder frozen, so trained latents stay valid."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 5e-4
    warmup: int = 20
    n_train: int = 4000
    seed: int = 1  # other scenes than the first stage's
    threads: int = 1


def finetune_decoder(cfg: TrainDecoderConfig, vae, log=print):
    """Fine-tune the VAE decoder on whole 64x64 frames (the encoder, and so the UNet's latents, untouched)."""
    with reproducible(cfg.seed, cfg.threads) as g:
        images, _ = scene_pool(cfg.n_train, cfg.seed)
        latents = encode_latents(vae, images)
        pool = torch.from_numpy(images)
        params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
        vae.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        vae.decoder.train()
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

        def loss_at(step):
            idx = torch.randint(0, len(pool), (cfg.batch_size,), generator=g)
            x = to_model(pool[idx].numpy())
            rec = vae.decode(latents[idx]).sample
            return F.l1_loss(rec, x) + F.mse_loss(rec, x)

        _train_loop(opt, cfg, loss_at, log, every=50)
        return vae.eval().requires_grad_(False)


# ---------------------------------------------------------------- stage 2: text encoder + UNet

@dataclass
class TrainSdConfig:
    """Settings of the joint text encoder + UNet run (DDPM epsilon loss, caption dropout for guidance)."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    uncond_p: float = 0.1  # the caption is replaced by "" this often (classifier-free guidance)
    text_lr_scale: float = 1.0
    offset_noise: float = 0.15  # see _eps_loss (the first 1500 steps of the shipped run had 0: a fine-tune added it)
    n_train: int = 12000
    seed: int = 0
    threads: int = 1


def train_sd(cfg: TrainSdConfig, vae, tokenizer, log=print, init: tuple | None = None):
    """Train CLIPTextModel + UNet2DConditionModel on VAE latents of the non-held-out scenes (from scratch, or from `init`)."""
    from transformers import CLIPTextModel

    with reproducible(cfg.seed, cfg.threads) as g:
        images, scenes = scene_pool(cfg.n_train, cfg.seed, exclude=set(HELD_OUT_CAPTIONS))
        latents = encode_latents(vae, images) * vae.config.scaling_factor
        captions = ["", *all_captions()]  # row 0: the unconditional caption
        caption_id = torch.tensor([captions.index(s.caption) for s in scenes])
        tokens = tokenize(tokenizer, captions)
        if init is None:
            text_encoder, unet = CLIPTextModel(text_encoder_config(tokenizer)), build_unet()
        else:
            text_encoder, unet = init
        text_encoder.train().requires_grad_(True)
        unet.train().requires_grad_(True)
        scheduler = build_scheduler()
        alphas = scheduler.alphas_cumprod.float()
        params = list(unet.parameters()) + list(text_encoder.parameters())
        # the text encoder learns faster: from scratch, its words must separate before the UNet can use them
        groups = [{"params": list(unet.parameters()), "scale": 1.0}, {"params": list(text_encoder.parameters()), "scale": cfg.text_lr_scale}]
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.01)

        def loss_at(step):
            idx = torch.randint(0, len(latents), (cfg.batch_size,), generator=g)
            ids = torch.where(torch.rand(cfg.batch_size, generator=g) < cfg.uncond_p, 0, caption_id[idx])
            unique, inverse = torch.unique(ids, return_inverse=True)
            cond = text_encoder(tokens[unique]).last_hidden_state[inverse]
            return _eps_loss(unet, latents[idx], cond, alphas, g, cfg.offset_noise)

        _train_loop(opt, cfg, loss_at, log, every=100, clip=params)
        return text_encoder.eval().requires_grad_(False), unet.eval().requires_grad_(False), scheduler


def _eps_loss(model, x0: torch.Tensor, cond: torch.Tensor, alphas: torch.Tensor, g: torch.Generator, offset: float = 0.0) -> torch.Tensor:
    """DDPM noise-prediction loss at uniform timesteps; x0 is (B, C, H, W) or (B, C, F, H, W).

    `offset` adds a per-sample, per-channel constant to the noise ("offset noise"). Why: on a 16x16
    latent the mean of a channel (the picture's colours) survives even SD's last noise level, so a
    model trained without it takes its colours from the starting noise, not from the caption.
    """
    b = x0.shape[0]
    t = torch.randint(0, len(alphas), (b,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    if offset:
        noise = noise + offset * torch.randn((b, x0.shape[1], *[1] * (x0.ndim - 2)), generator=g)
    a = alphas[t].view(b, *[1] * (x0.ndim - 1))
    noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return F.mse_loss(model(noisy, t, encoder_hidden_states=cond).sample, noise)


# ---------------------------------------------------------------- stage 3: motion adapter

@dataclass
class TrainMotionConfig:
    """Settings of the MotionAdapter run (UNet and text encoder frozen; only the temporal modules learn)."""

    steps: int = 1500
    batch_size: int = 2  # clips per step
    frames: int = 16  # AnimateDiff's own context length: the engine's default context_frames
    lr: float = 1e-3
    warmup: int = 50
    uncond_p: float = 0.1
    offset_noise: float = 0.15
    n_clips: int = 800
    seed: int = 0
    threads: int = 1


def train_motion(cfg: TrainMotionConfig, vae, text_encoder, tokenizer, unet, log=print, adapter=None):
    """Train the MotionAdapter inside UNetMotionModel.from_unet2d(unet, adapter); returns the UNetMotionModel."""
    from diffusers import UNetMotionModel

    with reproducible(cfg.seed, cfg.threads) as g:
        rng = np.random.default_rng(cfg.seed)
        clips, texts = [], []
        for _ in range(cfg.n_clips):
            frames, frame_texts, _ = make_clip(rng, cfg.frames)
            clips.append(frames)
            texts.append(frame_texts)
        flat = np.concatenate(clips)
        lat = encode_latents(vae, flat) * vae.config.scaling_factor  # (N*F, C, h, w)
        lat = lat.view(cfg.n_clips, cfg.frames, *lat.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()  # (N, C, F, h, w)
        captions = ["", *all_captions()]
        caption_id = torch.tensor([[captions.index(t) for t in clip] for clip in texts])  # (N, F)
        with torch.no_grad():
            embeddings = text_encoder(tokenize(tokenizer, captions)).last_hidden_state
        model = UNetMotionModel.from_unet2d(unet, adapter if adapter is not None else build_motion_adapter())
        model.freeze_unet2d_params()
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
        alphas = build_scheduler().alphas_cumprod.float()

        def loss_at(step):
            idx = torch.randint(0, cfg.n_clips, (cfg.batch_size,), generator=g)
            drop = torch.rand(cfg.batch_size, 1, generator=g) < cfg.uncond_p  # the whole clip loses its captions
            ids = torch.where(drop, 0, caption_id[idx]).flatten()
            # one caption per frame, frames of a clip adjacent: the layout AnimateDiffPipeline feeds the UNet
            return _eps_loss(model, lat[idx], embeddings[ids], alphas, g, cfg.offset_noise)

        _train_loop(opt, cfg, loss_at, log, every=50, clip=params)
        return model.eval().requires_grad_(False)


# ---------------------------------------------------------------- sampling and evaluation

@torch.no_grad()
def sample_images(components: dict, prompts: list[str], steps: int = 20, guidance: float = 4.0, seed: int = 0) -> torch.Tensor:
    """Plain DDIM with classifier-free guidance: (N, 3, 64, 64) images in [0, 1], one per prompt."""
    vae, text_encoder, tokenizer, unet = (components[k] for k in ("vae", "text_encoder", "tokenizer", "unet"))
    scheduler = components["scheduler"]
    scheduler.set_timesteps(steps)
    cond = text_encoder(tokenize(tokenizer, prompts)).last_hidden_state
    uncond = text_encoder(tokenize(tokenizer, [""])).last_hidden_state.expand_as(cond)
    g = torch.Generator().manual_seed(seed)
    n, size = len(prompts), unet.config.sample_size
    x = torch.randn((n, unet.config.in_channels, size, size), generator=g) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
        e_u, e_c = eps.chunk(2)
        x = scheduler.step(e_u + guidance * (e_c - e_u), t, x).prev_sample
    return ((vae.decode(x / vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)


@torch.no_grad()
def sample_clips(components: dict, motion_unet, prompts: list[str], frames: int = 8, steps: int = 20, guidance: float = 4.0, seed: int = 0) -> torch.Tensor:
    """DDIM + guidance with a UNetMotionModel: (N, frames, 3, 64, 64) clips in [0, 1], one per prompt."""
    vae, text_encoder, tokenizer = (components[k] for k in ("vae", "text_encoder", "tokenizer"))
    scheduler = components["scheduler"]
    scheduler.set_timesteps(steps)
    n = len(prompts)
    cond = text_encoder(tokenize(tokenizer, prompts)).last_hidden_state.repeat_interleave(frames, dim=0)
    uncond = text_encoder(tokenize(tokenizer, [""])).last_hidden_state.expand_as(cond)
    g = torch.Generator().manual_seed(seed)
    size, ch = motion_unet.config.sample_size, motion_unet.config.in_channels
    x = torch.randn((n, ch, frames, size, size), generator=g) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = motion_unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
        e_u, e_c = eps.chunk(2)
        x = scheduler.step(e_u + guidance * (e_c - e_u), t, x).prev_sample
    flat = x.permute(0, 2, 1, 3, 4).reshape(n * frames, ch, size, size)
    images = ((vae.decode(flat / vae.config.scaling_factor).sample + 1) / 2).clamp(0, 1)
    return images.view(n, frames, *images.shape[1:])


def motion_unet(components: dict, adapter):
    """UNetMotionModel.from_unet2d(unet, adapter) in eval mode, as AnimateDiffPipeline builds it."""
    from diffusers import UNetMotionModel

    return UNetMotionModel.from_unet2d(components["unet"], adapter).eval().requires_grad_(False)


@torch.no_grad()
def caption_rank_accuracy(perceptor, images01: torch.Tensor, prompts: list[str]) -> tuple[float, list[str]]:
    """Share of images whose own prompt the toy CLIP ranks first among all 280 captions; and the winners."""
    captions = all_captions()
    s = perceptor.input_size
    x = F.interpolate(images01, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
    sims = perceptor.encode_image(x) @ perceptor.encode_text(captions).T
    best = [captions[i] for i in sims.argmax(dim=1).tolist()]
    return sum(b == p for b, p in zip(best, prompts)) / max(1, len(prompts)), best


# ---------------------------------------------------------------- command line

def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    """Command line: train one stage and write it into the diffusers folder, or evaluate the folder."""
    parser = argparse.ArgumentParser(prog="python -m tools.train_toy_diffusion", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("vae", "decoder", "sd", "motion", "eval"))
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="the diffusers folder (read and written)")
    parser.add_argument("--steps", type=int, default=None, help="override the stage's step count")
    parser.add_argument("--seed", type=int, default=None, help="--resume: the round's data and noise seed (default 1)")
    parser.add_argument("--offset-noise", type=float, default=None, help="sd, motion: override the offset noise (0.15)")
    parser.add_argument("--resume", action="store_true", help="sd, motion: continue from the saved weights (text encoder + UNet, or the adapter)")
    parser.add_argument("--threads", type=int, default=1, help="1: on a shared 2-core CPU two threads spin-wait (5x slower)")
    parser.add_argument("--sheet", type=Path, default=None, help="eval: write a PNG contact sheet of the samples")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.stage == "vae":
        cfg = TrainVaeConfig(threads=args.threads, **({"steps": args.steps} if args.steps else {}))
        vae = train_vae(cfg)
        save_fp16(vae, out / "vae")
        _report_vae(load_components(out, ("vae",))["vae"])
    elif args.stage == "decoder":
        cfg = TrainDecoderConfig(threads=args.threads, **({"steps": args.steps} if args.steps else {}))
        vae = finetune_decoder(cfg, load_components(out, ("vae",))["vae"])
        save_fp16(vae, out / "vae")
        _report_vae(load_components(out, ("vae",))["vae"])
    elif args.stage == "sd":
        cfg = TrainSdConfig(threads=args.threads, **({"steps": args.steps} if args.steps else {}))
        tokenizer = build_tokenizer(out / "tokenizer")
        vae = load_components(out, ("vae",))["vae"]
        if args.offset_noise is not None:
            cfg = dataclasses.replace(cfg, offset_noise=args.offset_noise)
        init = None
        if args.resume:  # a second round from the saved weights, on scenes of another seed
            c = load_components(out, ("text_encoder", "unet"))
            init = (c["text_encoder"], c["unet"])
            cfg = dataclasses.replace(cfg, seed=args.seed or 1, warmup=50, text_lr_scale=3.0)
        text_encoder, unet, scheduler = train_sd(cfg, vae, tokenizer, init=init)
        save_fp16(text_encoder, out / "text_encoder")
        save_fp16(unet, out / "unet")
        scheduler.save_pretrained(out / "scheduler")
        write_model_index(out)
    elif args.stage == "motion":
        cfg = TrainMotionConfig(threads=args.threads, **({"steps": args.steps} if args.steps else {}))
        if args.offset_noise is not None:
            cfg = dataclasses.replace(cfg, offset_noise=args.offset_noise)
        parts = ("vae", "text_encoder", "tokenizer", "unet", "scheduler") + (("motion_adapter",) if args.resume else ())
        c = load_components(out, parts)
        if args.resume:  # a second round from the saved adapter, on clips of another seed
            cfg = dataclasses.replace(cfg, seed=args.seed or 1, warmup=20)
        model = train_motion(cfg, c["vae"], c["text_encoder"], c["tokenizer"], c["unet"], adapter=c.get("motion_adapter"))
        model.save_motion_modules(str(out / "motion_adapter"), safe_serialization=True)  # writes fp32 ...
        save_fp16(load_components(out, ("motion_adapter",))["motion_adapter"], out / "motion_adapter")  # ... so halve it
    minutes = (time.time() - start) / 60
    if args.stage != "eval":
        print(f"{args.stage}: trained in {minutes:.1f} min; {out} is {_size_mb(out):.1f} MB")
    if args.stage in ("sd", "eval"):
        _report_t2i(out, args.sheet)
    if args.stage in ("motion", "eval") and (out / "motion_adapter").is_dir():
        _report_motion(out, args.sheet)
    return 0


def _report_motion(out: Path, sheet: Path | None) -> None:
    from vqclip.models.clip import load_perceptor

    components = load_components(out, ("vae", "text_encoder", "tokenizer", "unet", "scheduler", "motion_adapter"))
    prompts = HELD_OUT_CAPTIONS[:8]
    clips = sample_clips(components, motion_unet(components, components["motion_adapter"]), prompts, frames=8)
    n, f = clips.shape[:2]
    acc, _ = caption_rank_accuracy(load_perceptor("toy"), clips.flatten(0, 1), [p for p in prompts for _ in range(f)])
    diff = (clips[:, 1:] - clips[:, :-1]).abs().mean().item()
    print(f"motion: {acc:.1%} of {n * f} frames ranked to their prompt; mean |frame difference| {diff:.4f}")
    if sheet is not None:
        from vqclip.toy.data import contact_sheet

        arr = (clips.flatten(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        contact_sheet(arr, cols=f).save(sheet.with_name(sheet.stem + "_motion.png"))


def _report_vae(vae) -> None:
    from vqclip.toy.metrics import psnr

    images, _ = scene_pool(256, seed=2)
    with torch.no_grad():
        rec = vae.decode(encode_latents(vae, images)).sample
    print(f"vae: held-out PSNR {psnr((rec + 1) / 2, images_to_tensor(images)):.1f} dB, scaling_factor {vae.config.scaling_factor:.3f}")


def _report_t2i(out: Path, sheet: Path | None) -> None:
    from vqclip.models.clip import load_perceptor

    components = load_components(out)
    images = sample_images(components, HELD_OUT_CAPTIONS, steps=20)
    acc, best = caption_rank_accuracy(load_perceptor("toy"), images, HELD_OUT_CAPTIONS)
    print(f"t2i: toy CLIP ranks the caption first on {acc:.1%} of {len(HELD_OUT_CAPTIONS)} held-out captions (DDIM 20, guidance 4)")
    for p, b in zip(HELD_OUT_CAPTIONS, best):
        if p != b:
            print(f"  {p!r} -> {b!r}")
    if sheet is not None:
        from vqclip.toy.data import contact_sheet

        arr = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        contact_sheet(arr, cols=8).save(sheet)


if __name__ == "__main__":
    raise SystemExit(main())
