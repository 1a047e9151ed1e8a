"""The VQGAN image decoder/encoder, assembled from taming-transformers' building blocks.

`taming.models.*` is never imported: it needs an old pytorch-lightning and builds the training
loss (which downloads LPIPS/VGG weights). We build the same submodules under the same attribute
names, so the published state_dict keys load as they are (Esser et al. 2021, "Taming
Transformers for High-Resolution Image Synthesis").
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from vqclip.errors import ConfigError, ModelError

__all__ = [
    "VQGAN",
    "load_vqgan",
    "build_vqgan",
    "save_taming_checkpoint",
    "parse_taming_config",
    "clamp_with_grad",
]

_VQ_TARGET = "taming.models.vqgan.VQModel"
_GUMBEL_TARGET = "taming.models.vqgan.GumbelVQ"
_TRANSFORMER_TARGET = "taming.models.cond_transformer.Net2NetTransformer"
_REQUIRED_DDCONFIG = ("ch", "out_ch", "ch_mult", "num_res_blocks", "attn_resolutions", "in_channels", "resolution", "z_channels")


# --- differentiable helpers ----------------------------------------------------------------------


class _ClampWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # Outside the range, keep the gradient only if a descent step (x - lr*grad) moves x back
        # toward the range; inside it, pass it unchanged. A plain clamp would zero it everywhere
        # outside and leave those pixels stuck.
        overshoot = x - x.clamp(ctx.lo, ctx.hi)
        return grad * (grad * overshoot >= 0), None, None


def clamp_with_grad(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Clamp to [lo, hi]; the backward pass lets gradient through where it pulls x back in range."""
    return _ClampWithGrad.apply(x, lo, hi)


class _ReplaceGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, forward_value: torch.Tensor, backward_target: torch.Tensor) -> torch.Tensor:
        return forward_value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, grad


# --- the module ----------------------------------------------------------------------------------


class VQGAN(nn.Module):
    """A taming VQGAN first stage: encoder, codebook quantizer, decoder (kind "vq" or "gumbel")."""

    def __init__(self, ddconfig: Mapping[str, Any], n_embed: int, embed_dim: int, kind: str = "vq", kl_weight: float = 1e-8):
        super().__init__()
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import GumbelQuantize, VectorQuantizer2

        if kind not in ("vq", "gumbel"):
            raise ConfigError(f"VQGAN kind {kind!r} is not known; allowed: 'vq', 'gumbel'")
        missing = [k for k in _REQUIRED_DDCONFIG if k not in ddconfig]
        if missing:
            raise ConfigError(f"VQGAN ddconfig lacks {', '.join(missing)}; it needs {', '.join(_REQUIRED_DDCONFIG)}")
        if int(ddconfig["ch"]) % 32:
            # every taming block normalizes with GroupNorm(32 groups)
            raise ConfigError(f"VQGAN ddconfig.ch is {ddconfig['ch']}; it must be a multiple of 32 (taming's GroupNorm has 32 groups)")
        z_channels = int(ddconfig["z_channels"])
        if kind == "gumbel" and int(embed_dim) != z_channels:
            # taming feeds quant_conv's output (embed_dim channels) to a proj built for z_channels
            raise ConfigError(f"GumbelVQ needs embed_dim == ddconfig.z_channels, got embed_dim={embed_dim}, z_channels={z_channels}")
        self.ddconfig = dict(ddconfig)
        self.kind = kind
        self.n_embed = int(n_embed)
        self.embed_dim = int(embed_dim)
        self.kl_weight = float(kl_weight)
        self.factor = 2 ** (len(ddconfig["ch_mult"]) - 1)
        with contextlib.redirect_stdout(io.StringIO()):  # taming's Decoder prints its z shape
            self.encoder = Encoder(**self.ddconfig)
            self.decoder = Decoder(**self.ddconfig)
        if kind == "vq":
            self.quantize = VectorQuantizer2(self.n_embed, self.embed_dim, beta=0.25)
        else:
            self.quantize = GumbelQuantize(z_channels, self.embed_dim, n_embed=self.n_embed, kl_weight=self.kl_weight, temp_init=1.0)
        self.quant_conv = nn.Conv2d(z_channels, self.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(self.embed_dim, z_channels, 1)

    @property
    def codebook(self) -> torch.Tensor:
        """The (n_embed, embed_dim) codebook."""
        return self.quantize.embedding.weight if self.kind == "vq" else self.quantize.embed.weight

    def encode(self, image01: torch.Tensor) -> torch.Tensor:
        """Image (B,3,H,W) in [0,1] -> quantized latent (B, embed_dim, H/f, W/f), deterministic."""
        h, w = image01.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ConfigError(f"image size {w}x{h} is not allowed for this VQGAN; width and height must be multiples of {self.factor}")
        feats = self.quant_conv(self.encoder(image01 * 2 - 1))
        if self.kind == "vq":
            return self.quantize_st(feats)
        # GumbelVQ samples a code during training; for an init we want its most likely code.
        idx = self.quantize.proj(feats).argmax(dim=1)
        return F.embedding(idx, self.codebook).movedim(-1, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, embed_dim, h, w) -> image (B,3,h*f,w*f) in [0,1]; no quantization here."""
        out = self.decoder(self.post_quant_conv(z))  # taming's conv_out is in [-1, 1] space
        return clamp_with_grad(out.add(1).div(2), 0.0, 1.0)

    def quantize_st(self, z: torch.Tensor) -> torch.Tensor:
        """Snap each latent vector to its nearest codebook entry, straight-through gradient to z."""
        codebook = self.codebook.to(z.dtype)
        flat = z.movedim(1, -1).reshape(-1, codebook.shape[1])
        dist = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.T
        z_q = codebook[dist.argmin(1)].view(z.shape[0], z.shape[2], z.shape[3], -1).movedim(-1, 1)
        return _ReplaceGrad.apply(z_q, z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Quantize (straight-through) and decode a latent: what one VQGAN-CLIP step renders."""
        return self.decode(self.quantize_st(z))


# --- configs -------------------------------------------------------------------------------------


def _get(mapping: Any, key: str, where: str, source: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise ModelError(f"VQGAN config {source}: {where}.{key} is missing; a taming config needs it")
    return mapping[key]


def _target_kind(target: str) -> str | None:
    name = str(target).rsplit(".", 1)[-1]
    return {"VQModel": "vq", "GumbelVQ": "gumbel", "Net2NetTransformer": "transformer"}.get(name)


def parse_taming_config(config: Mapping[str, Any], source: str = "<dict>") -> dict[str, Any]:
    """Read a taming config dict -> {config_kind, kind, n_embed, embed_dim, ddconfig, kl_weight, prefix}."""
    model = _get(config, "model", "", source)
    target = _get(model, "target", "model", source)
    config_kind = _target_kind(target)
    if config_kind is None:
        raise ModelError(
            f"VQGAN config {source}: model.target is {target!r}; allowed: {_VQ_TARGET}, {_GUMBEL_TARGET}, {_TRANSFORMER_TARGET}"
        )
    params = _get(model, "params", "model", source)
    where, prefix = "model.params", ""
    if config_kind == "transformer":
        first = _get(params, "first_stage_config", "model.params", source)
        first_target = _get(first, "target", "model.params.first_stage_config", source)
        if _target_kind(first_target) not in ("vq", "gumbel"):
            raise ModelError(
                f"VQGAN config {source}: model.params.first_stage_config.target is {first_target!r}; "
                f"allowed: {_VQ_TARGET}, {_GUMBEL_TARGET}"
            )
        where, prefix = "model.params.first_stage_config.params", "first_stage_model."
        kind = _target_kind(first_target)
        params = _get(first, "params", "model.params.first_stage_config", source)
    else:
        kind = config_kind
    ddconfig = dict(_get(params, "ddconfig", where, source))
    missing = [k for k in _REQUIRED_DDCONFIG if k not in ddconfig]
    if missing:
        raise ModelError(f"VQGAN config {source}: {where}.ddconfig lacks {', '.join(missing)}")
    return {
        "config_kind": config_kind,
        "kind": kind,
        "n_embed": int(_get(params, "n_embed", where, source)),
        "embed_dim": int(_get(params, "embed_dim", where, source)),
        "ddconfig": ddconfig,
        "kl_weight": float(params.get("kl_weight", 1e-8)),
        "prefix": prefix,
        "params_path": where,
    }


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(f"VQGAN config file {str(path)!r} does not exist; give the .yaml that came with the checkpoint")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"VQGAN config file {str(path)!r} is not valid YAML ({exc}); it should be a taming model.yaml") from exc
    if not isinstance(data, dict):
        raise ModelError(f"VQGAN config file {str(path)!r} holds a {type(data).__name__}, not a taming config mapping with 'model:'")
    return data


def _arch_from(config: Any) -> tuple[dict[str, Any], str]:
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file() and isinstance(config, str) and not config.endswith((".yaml", ".yml")):
            from vqclip.models.registry import get_model_info, resolve_model

            info = get_model_info(config, "vqgan")
            if info.arch is None:  # packaged entries describe themselves in their yaml
                path = resolve_model(config, "vqgan", download=False).paths[0]
                return parse_taming_config(_read_yaml(path), str(path)), str(path)
            return info.architecture, f"registry entry {config!r}"
        return parse_taming_config(_read_yaml(path), str(path)), str(path)
    if isinstance(config, Mapping):
        if "model" in config:
            return parse_taming_config(config), "<dict>"
        if "ddconfig" in config:  # already-parsed architecture (registry entries carry this form)
            return dict(config), "<dict>"
    raise ConfigError(
        f"VQGAN config {config!r} is not usable; allowed: a taming .yaml path, a taming config dict, "
        "an architecture dict with ddconfig/n_embed/embed_dim, or a registry model name"
    )


def build_vqgan(config: Mapping[str, Any] | str | os.PathLike) -> VQGAN:
    """Build a VQGAN with random weights from a taming yaml/dict, an architecture dict or a registry name."""
    arch, _ = _arch_from(config)
    return VQGAN(arch["ddconfig"], arch["n_embed"], arch["embed_dim"], kind=arch.get("kind", "vq"), kl_weight=arch.get("kl_weight", 1e-8))


# --- loading -------------------------------------------------------------------------------------


def _fmt_keys(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _select_first_stage(state: Mapping[str, torch.Tensor], arch: dict[str, Any]) -> OrderedDict:
    prefix = arch["prefix"]
    if prefix:
        ignored = ("cond_stage_model.", "transformer.", "first_stage_model.loss.")
    else:
        ignored = ("loss.",)
    picked: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str) or key.startswith(ignored) or key in ("colorize", prefix + "colorize"):
            continue
        if prefix:
            # anything outside first_stage_model. is reported as unexpected under its full name
            picked[key[len(prefix):] if key.startswith(prefix) else "\0" + key] = value
        else:
            picked[key] = value
    return picked


def _mismatch_problems(model: VQGAN, sd: Mapping[str, torch.Tensor], arch: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    prefix, where = arch["prefix"], arch["params_path"]
    model_cb = "quantize.embedding.weight" if model.kind == "vq" else "quantize.embed.weight"
    alt_cb = "quantize.embed.weight" if model.kind == "vq" else "quantize.embedding.weight"
    kind_mismatch = alt_cb in sd and model_cb not in sd
    if kind_mismatch:
        has, says = ("GumbelVQ", "VQModel") if model.kind == "vq" else ("VQModel", "GumbelVQ")
        problems.append(f"the checkpoint holds a {has} codebook ({prefix}{alt_cb}) but the config's first stage is a {says}")
    cb_key = alt_cb if kind_mismatch else model_cb
    codebook = sd.get(cb_key)
    skip_shape = set()
    if isinstance(codebook, torch.Tensor) and codebook.dim() == 2:
        n, d = codebook.shape
        if n != model.n_embed:
            problems.append(f"n_embed: checkpoint has {n} codes ({prefix}{cb_key} {list(codebook.shape)}), config {where}.n_embed is {model.n_embed}")
            skip_shape.add(cb_key)
        if d != model.embed_dim:
            problems.append(f"embed_dim: checkpoint has {d} ({prefix}{cb_key} {list(codebook.shape)}), config {where}.embed_dim is {model.embed_dim}")
            skip_shape.add(cb_key)
    expected = model.state_dict()
    missing = [prefix + k for k in expected if k not in sd and not (kind_mismatch and k == model_cb)]
    unexpected = [k[1:] if k.startswith("\0") else prefix + k for k in sd if k not in expected and not (kind_mismatch and k == alt_cb)]
    shapes = [
        f"{prefix}{k} checkpoint {list(sd[k].shape)} vs config {list(v.shape)}"
        for k, v in expected.items()
        if k in sd and k not in skip_shape and isinstance(sd[k], torch.Tensor) and sd[k].shape != v.shape
    ]
    if missing:
        problems.append(f"{len(missing)} missing keys: {_fmt_keys(missing)}")
        if prefix and not any(not k.startswith("\0") for k in sd):
            problems.append(f"no key starts with {prefix!r}: this looks like a plain VQModel checkpoint, so use its own VQModel yaml")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_fmt_keys(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_fmt_keys(shapes, 3)}")
    return problems


def load_vqgan(config_path: str | os.PathLike, checkpoint_path: str | os.PathLike, device: str | torch.device = "cpu") -> VQGAN:
    """Load a published taming VQGAN (VQModel, GumbelVQ or Net2NetTransformer first stage), frozen."""
    from vqclip.models.safe_load import safe_load_checkpoint

    config_path, checkpoint_path = Path(config_path), Path(checkpoint_path)
    arch = parse_taming_config(_read_yaml(config_path), str(config_path))
    checkpoint = safe_load_checkpoint(checkpoint_path)
    state = checkpoint.get("state_dict")
    if state is None and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state = checkpoint  # a bare state_dict (what extraction scripts write)
    if not isinstance(state, Mapping):
        raise ModelError(
            f"checkpoint {str(checkpoint_path)!r} has no 'state_dict' (top-level keys: {_fmt_keys(sorted(map(str, checkpoint)))}); "
            "expected a taming/Lightning .ckpt"
        )
    model = VQGAN(arch["ddconfig"], arch["n_embed"], arch["embed_dim"], kind=arch["kind"], kl_weight=arch["kl_weight"])
    sd = _select_first_stage(state, arch)
    problems = _mismatch_problems(model, sd, arch)
    if problems:
        raise ModelError(f"checkpoint {str(checkpoint_path)!r} does not match config {str(config_path)!r}: " + "; ".join(problems))
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval().requires_grad_(False)


# --- writing the published formats ---------------------------------------------------------------


def _first_stage_params(model: VQGAN, loss_target: str, loss_params: dict | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if model.kind == "gumbel":
        params["kl_weight"] = model.kl_weight
    params["embed_dim"] = model.embed_dim
    params["n_embed"] = model.n_embed
    params["monitor"] = "val/rec_loss"
    if model.kind == "gumbel":
        params["temperature_scheduler_config"] = {
            "target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
            "params": {"warm_up_steps": 0, "max_decay_steps": 1000001, "lr_start": 0.9, "lr_max": 0.9, "lr_min": 1.0e-06},
        }
    ddconfig = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in model.ddconfig.items()}
    params["ddconfig"] = ddconfig
    params["lossconfig"] = {"target": loss_target, **({"params": loss_params} if loss_params else {})}
    return params


def _taming_config(model: VQGAN, kind: str) -> dict[str, Any]:
    if kind == "vq":
        loss = ("taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 0, "disc_weight": 0.75, "disc_num_layers": 2, "codebook_weight": 1.0})
        return {"model": {"base_learning_rate": 4.5e-06, "target": _VQ_TARGET, "params": _first_stage_params(model, *loss)}}
    if kind == "gumbel":
        return {"model": {"base_learning_rate": 4.5e-06, "target": _GUMBEL_TARGET,
                          "params": _first_stage_params(model, "taming.modules.losses.vqperceptual.DummyLoss")}}
    tokens = (model.ddconfig["resolution"] // model.factor) ** 2
    return {"model": {"base_learning_rate": 0.0625, "target": _TRANSFORMER_TARGET, "params": {
        "cond_stage_config": "__is_unconditional__",
        "first_stage_key": "image",
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT",
                               "params": {"vocab_size": model.n_embed, "block_size": tokens, "n_layer": 1, "n_head": 1, "n_embd": 8}},
        "first_stage_config": {"target": _VQ_TARGET if model.kind == "vq" else _GUMBEL_TARGET,
                               "params": _first_stage_params(model, "taming.modules.losses.DummyLoss")},
    }}}


def _tiny_gpt_state(vocab: int, block: int, n_embd: int = 8) -> dict[str, torch.Tensor]:
    # a one-layer minGPT with taming's key names, so loaders see what real transformer ckpts hold
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g) * 0.02  # noqa: E731
    state = {"transformer.tok_emb.weight": r(vocab, n_embd), "transformer.pos_emb": r(1, block, n_embd)}
    for name in ("ln1", "ln2"):
        state[f"transformer.blocks.0.{name}.weight"] = torch.ones(n_embd)
        state[f"transformer.blocks.0.{name}.bias"] = torch.zeros(n_embd)
    for name in ("key", "query", "value", "proj"):
        state[f"transformer.blocks.0.attn.{name}.weight"] = r(n_embd, n_embd)
        state[f"transformer.blocks.0.attn.{name}.bias"] = torch.zeros(n_embd)
    state["transformer.blocks.0.attn.mask"] = torch.tril(torch.ones(block, block)).view(1, 1, block, block)
    state["transformer.blocks.0.mlp.0.weight"] = r(4 * n_embd, n_embd)
    state["transformer.blocks.0.mlp.0.bias"] = torch.zeros(4 * n_embd)
    state["transformer.blocks.0.mlp.2.weight"] = r(n_embd, 4 * n_embd)
    state["transformer.blocks.0.mlp.2.bias"] = torch.zeros(n_embd)
    state["transformer.ln_f.weight"] = torch.ones(n_embd)
    state["transformer.ln_f.bias"] = torch.zeros(n_embd)
    state["transformer.head.weight"] = r(vocab, n_embd)
    return state


def _loss_state() -> dict[str, torch.Tensor]:
    # a token of what VQLPIPSWithDiscriminator leaves in real first-stage ckpts (LPIPS + PatchGAN)
    return {
        "loss.perceptual_loss.scaling_layer.shift": torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1),
        "loss.perceptual_loss.scaling_layer.scale": torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1),
        "loss.perceptual_loss.lin0.model.1.weight": torch.full((1, 64, 1, 1), 0.1),
        "loss.discriminator.main.0.weight": torch.zeros(64, 3, 4, 4),
        "loss.discriminator.main.0.bias": torch.zeros(64),
        "loss.discriminator.main.3.running_mean": torch.zeros(128),
        "loss.discriminator.main.3.running_var": torch.ones(128),
        "loss.discriminator.main.3.num_batches_tracked": torch.tensor(0),
    }


def _model_checkpoint_class() -> type:
    # pickled by reference as pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint, exactly
    # as Lightning 1.0.8 keys its callback states, without importing Lightning
    return type("ModelCheckpoint", (), {"pickled_as": ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")})


def save_taming_checkpoint(model: VQGAN, checkpoint_path: str | os.PathLike, config_path: str | os.PathLike, kind: str | None = None) -> None:
    """Write `model` as a published-style taming yaml + Lightning-1.0.8-style ckpt (kind vq|gumbel|transformer)."""
    from vqclip.models.safe_load import LightningPickleModule

    kind = kind or model.kind
    allowed = {"vq": ("vq",), "gumbel": ("gumbel",), "transformer": ("vq", "gumbel")}
    if kind not in allowed:
        raise ConfigError(f"save_taming_checkpoint kind {kind!r} is not known; allowed: 'vq', 'gumbel', 'transformer'")
    if model.kind not in allowed[kind]:
        raise ConfigError(f"save_taming_checkpoint kind {kind!r} does not fit a {model.kind!r} VQGAN; allowed: {', '.join(k for k, v in allowed.items() if model.kind in v)}")
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if kind == "transformer":
        tokens = (model.ddconfig["resolution"] // model.factor) ** 2
        state = OrderedDict((f"first_stage_model.{k}", v) for k, v in weights.items())
        state.update(_tiny_gpt_state(model.n_embed, tokens))
        n_optimizers = 1
    else:
        state = OrderedDict(weights)
        state.update(_loss_state())
        n_optimizers = 2  # autoencoder + discriminator, as taming's configure_optimizers returns
    checkpoint = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "1.0.8",
        "callbacks": {_model_checkpoint_class(): {"best_model_score": torch.tensor(0.0), "best_model_path": ""}},
        "optimizer_states": [
            {"state": {}, "param_groups": [{"lr": 4.5e-06, "betas": (0.5, 0.9), "eps": 1e-08, "weight_decay": 0, "amsgrad": False, "params": []}]}
            for _ in range(n_optimizers)
        ],
        "lr_schedulers": [],
        "state_dict": state,
    }
    checkpoint_path, config_path = Path(checkpoint_path), Path(config_path)
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    # key order and block style as in the published model.yaml files (imagenet's ends in a blank line)
    text = yaml.safe_dump(_taming_config(model, kind), sort_keys=False, default_flow_style=False) + ("\n" if kind == "vq" else "")
    config_path.write_text(text, encoding="utf-8")
    torch.save(checkpoint, checkpoint_path, pickle_module=LightningPickleModule)
