"""The pretrained VQGAN checkpoints: architecture, mirrors, sizes, hashes, and the model cache.

Facts come from the published configs and mirror lists collected in `vqgan_configs/README.md`
(beside the project): every known mirror is kept, because hosts die. Entries are grouped by
`kind` ("vqgan" here); another kind of model (a denoiser, say) adds its own builder to
`_ENTRY_BUILDERS` and reuses the same cache, download and table code.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from vqclip.errors import ConfigError, DownloadError, ModelError
from vqclip.models.download import RemoteFile, fetch_file, is_cached

__all__ = [
    "ModelInfo",
    "RemoteFile",
    "get_model_info",
    "list_models",
    "default_cache_dir",
    "model_dir",
    "resolve_vqgan",
    "download_model",
    "format_model_table",
    "model_status",
    "model_size_text",
    "packaged_dir",
]

_MB = 1_000_000
_GB = 1_000_000_000


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry: files with their mirrors, the architecture, and what it is good for."""

    name: str
    kind: str  # "vqgan"; the cache keeps each kind in its own subfolder
    files: tuple[RemoteFile, ...]  # vqgan: (config .yaml, checkpoint .ckpt)
    good_for: str
    source: str  # provenance and licence, as far as it is known
    arch: Mapping[str, Any] | None = None  # what build_vqgan needs; None: read from the packaged yaml
    pages: tuple[str, ...] = ()  # web pages to fetch the files by hand when no direct mirror works
    notes: str = ""
    packaged: bool = False  # files ship inside the vqclip package (never downloaded)

    @property
    def architecture(self) -> dict[str, Any]:
        """A fresh copy of the architecture dict (kind, n_embed, embed_dim, ddconfig, config_target)."""
        if self.arch is None:
            raise ModelError(f"model {self.name!r} has no registry architecture; it is read from its packaged yaml")
        return copy.deepcopy(dict(self.arch))

    @property
    def approx_bytes(self) -> int | None:
        """Total download size in bytes (exact where published, else approximate; None if unknown)."""
        sizes = [f.size or f.approx_bytes for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)


# --- the entries ---------------------------------------------------------------------------------


def _ddconfig(ch_mult: list[int], attn: list[int]) -> dict[str, Any]:
    return {
        "double_z": False,
        "z_channels": 256,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": ch_mult,
        "num_res_blocks": 2,
        "attn_resolutions": attn,
        "dropout": 0.0,
    }


def _f16(n_embed: int, target: str = "VQModel") -> dict[str, Any]:
    return {"kind": "vq", "n_embed": n_embed, "embed_dim": 256, "ddconfig": _ddconfig([1, 1, 2, 2, 4], [16]), "config_target": target}


_HEIBOX = "https://heibox.uni-heidelberg.de"
_KOOFR = "https://app.koofr.net/content/links"
_LATENTSHIFT = "https://github.com/ieee8023/latentshift/releases/download/weights"
_PIXRAY = "https://github.com/pixray/pixray/releases/download/v1.7.1"
_IO = "http://mirror.io.community/blob/vqgan"
_SOMNAI = "https://huggingface.co/Somnai/pytti-vqgan-checkpoints/resolve/main"
_SOFTOLOGY = "https://huggingface.co/datasets/Softology-Pro/VoC/resolve/main"
_TAMING = "CompVis/taming-transformers (Esser, Rombach, Ommer 2021; code MIT); the weights carry no separate licence"


def _pair(name: str, config_urls: list[str], ckpt_urls: list[str], *, config_size=None, config_sha=None, config_approx=None,
          ckpt_size=None, ckpt_sha=None, ckpt_approx=None) -> tuple[RemoteFile, RemoteFile]:
    return (
        RemoteFile(f"{name}.yaml", tuple(config_urls), config_size, config_sha, config_approx or config_size, "yaml"),
        RemoteFile(f"{name}.ckpt", tuple(ckpt_urls), ckpt_size, ckpt_sha, ckpt_approx or ckpt_size, "ckpt"),
    )


def _vqgan_entries() -> list[ModelInfo]:
    return [
        ModelInfo(
            "imagenet_f16_16384", "vqgan",
            _pair(
                "imagenet_f16_16384",
                [f"{_HEIBOX}/d/a7530b09fed84f80a887/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1", f"{_HEIBOX}/f/274fb24ed38341bfa753/?dl=1",
                 f"{_SOMNAI}/imagenet/imagenet.yaml", f"{_IO}/vqgan_imagenet_f16_16384.yaml"],
                [f"{_HEIBOX}/d/a7530b09fed84f80a887/files/?p=%2Fckpts%2Flast.ckpt&dl=1", f"{_HEIBOX}/f/867b05fc8c4841768640/?dl=1",
                 f"{_SOMNAI}/imagenet/imagenet.ckpt",
                 "https://huggingface.co/eminorhan/gpt_visual_memory/resolve/main/vqgan_pretrained_models/imagenet_16x16_16384.ckpt",
                 f"{_IO}/vqgan_imagenet_f16_16384.ckpt"],
                config_size=692, config_sha="00e2c6189926f1d89ecfef73e9598db77981c1982f0555fbade963ffd16143c7",
                ckpt_size=980_092_370, ckpt_sha="845a68805098cb666420d5db93df53f3a3b6dd443e6dd85c05759c5b998cd663",
            ),
            "the default: any subject, the richest codebook; most VQGAN+CLIP art uses it",
            f"{_TAMING}; trained on ImageNet (research-use terms)",
            arch=_f16(16384),
            notes="HF boris/vqgan_f16_16384 is a fine-tuned, different file (sha256 ef7accb9…) and is not a mirror",
        ),
        ModelInfo(
            "imagenet_f16_1024", "vqgan",
            _pair(
                "imagenet_f16_1024",
                [f"{_HEIBOX}/d/8088892a516d4e3baf92/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1", f"{_HEIBOX}/f/6ecf2af6c658432c8298/?dl=1",
                 "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main/configs/model.yaml",
                 f"{_LATENTSHIFT}/vqgan_imagenet_f16_1024.yaml", f"{_IO}/vqgan_imagenet_f16_1024.yaml"],
                [f"{_HEIBOX}/d/8088892a516d4e3baf92/files/?p=%2Fckpts%2Flast.ckpt&dl=1", f"{_HEIBOX}/f/140747ba53464f49b476/?dl=1",
                 "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main/ckpts/last.ckpt",
                 f"{_LATENTSHIFT}/vqgan_imagenet_f16_1024.ckpt",
                 "https://huggingface.co/markweber/taming_vqgan/resolve/main/taming_vqgan.ckpt",
                 f"{_IO}/vqgan_imagenet_f16_1024.ckpt"],
                config_size=645, ckpt_approx=958 * _MB,
            ),
            "any subject with a small codebook: flatter colours, simpler textures",
            f"{_TAMING}; trained on ImageNet (research-use terms)",
            arch=_f16(1024),
            notes="no published sha256; mirror.io.community's copy was reported wrong (VQGAN-CLIP issue #114), so it is tried last",
        ),
        ModelInfo(
            "gumbel_8192", "vqgan",
            _pair(
                "gumbel_8192",
                [f"{_HEIBOX}/d/2e5662443a6b4307b470/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                 "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192/config.yaml",
                 f"{_LATENTSHIFT}/vqgan_gumbel_f8.yaml"],
                [f"{_HEIBOX}/d/2e5662443a6b4307b470/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                 "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192/model.ckpt",
                 f"{_LATENTSHIFT}/vqgan_gumbel_f8.ckpt"],
                config_approx=745, ckpt_size=376_581_823, ckpt_sha="5cd6c74810ab97e00e942c25403f73afc081e8b19987b31ec0d9ff5b68e7ab14",
            ),
            "fine detail (f8: 4x the latent tokens of f16); sharp small structures, slower and hungrier",
            f"{_TAMING}; trained on OpenImages (images under their own licences)",
            arch={"kind": "gumbel", "n_embed": 8192, "embed_dim": 256, "ddconfig": _ddconfig([1, 1, 2, 4], [32]),
                  "kl_weight": 1e-8, "config_target": "GumbelVQ"},
            notes="called openimages_f16_8192 in older notebooks; it is f8",
        ),
        ModelInfo(
            "coco", "vqgan",
            _pair(
                "coco",
                ["https://batbot.ai/models/VQGAN/coco_first_stage.yaml", f"{_SOFTOLOGY}/coco.yaml"],
                ["https://batbot.ai/models/VQGAN/coco_first_stage.ckpt", f"{_SOFTOLOGY}/coco_first_stage.ckpt"],
                config_approx=458, ckpt_approx=296 * _MB, ckpt_sha="106cc20fde571df14afc4349d62218d8213cf47177c682ecaa78a8c28b12f9de",
            ),
            "everyday scenes: objects and people in context (COCO)",
            f"{_TAMING}; first stage of the COCO transformer, as pytti serves it; COCO images under Flickr terms",
            arch=_f16(8192),
            pages=("https://k00.fr/2zz6i2ce",),
            notes=("the 8.4 GB Net2NetTransformer coco.yaml/coco.ckpt (https://dl.nmkd.de/ai/clip/coco/coco.yaml, .ckpt) "
                   "also loads if you place it here by hand; the registry fetches the 296 MB first stage"),
        ),
        ModelInfo(
            "faceshq", "vqgan",
            _pair(
                "faceshq",
                ["https://drive.google.com/uc?export=download&id=1fHwGx_hnBtC8nsq7hesJvs-Klv-P0gzT",
                 f"{_LATENTSHIFT}/2020-11-13T21-41-45_faceshq.yaml"],
                [f"{_KOOFR}/a04deec9-0c59-4673-8b37-3d696fe63a5d/files/get/last.ckpt?path=%2F2020-11-13T21-41-45_faceshq_transformer%2Fcheckpoints%2Flast.ckpt",
                 f"{_LATENTSHIFT}/2020-11-13T21-41-45_faceshq.pth"],
                config_approx=1451, ckpt_approx=3_970 * _MB,
            ),
            "faces (CelebA-HQ + FFHQ), portraits",
            f"{_TAMING}; Net2NetTransformer, only its first stage is used",
            arch=_f16(1024, "Net2NetTransformer"),
            pages=("https://k00.fr/qqfl2do8",),
            notes="ckpt size predicted from its keys (~3.97 GB); no published sha256",
        ),
        ModelInfo(
            "wikiart_1024", "vqgan",
            _pair(
                "wikiart_1024",
                [f"{_PIXRAY}/vqgan_wikiart_1024.yaml", f"{_IO}/wikiart.yaml"],
                [f"{_PIXRAY}/vqgan_wikiart_1024.ckpt", f"{_IO}/wikiart.ckpt"],
                ckpt_approx=958 * _MB,
            ),
            "painterly looks from art history, small codebook",
            "community-trained on WikiArt (not CompVis), re-hosted in pixray's v1.7.1 release; no licence stated; WikiArt images are artworks under their own rights",
            arch=_f16(1024),
            notes="no published sha256; the original mirror.io.community host is dead",
        ),
        ModelInfo(
            "wikiart_16384", "vqgan",
            _pair(
                "wikiart_16384",
                [f"{_SOFTOLOGY}/wikiart_16384.yaml", f"{_SOMNAI}/wikiart/wikiart.yaml", f"{_PIXRAY}/vqgan_wikiart_16384.yaml",
                 f"{_IO}/wikiart_16384.yaml", "http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.yaml"],
                [f"{_SOFTOLOGY}/wikiart_16384.ckpt", f"{_SOMNAI}/wikiart/wikiart.ckpt", f"{_PIXRAY}/vqgan_wikiart_16384.ckpt",
                 f"{_IO}/wikiart_16384.ckpt", "http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.ckpt"],
                config_approx=920, ckpt_approx=1_010 * _MB, ckpt_sha="bd08bb46301f98be1712bb2be9f8868cea30b53137cd985d4d6e8da8b3e02c36",
            ),
            "painterly looks from art history, with more detail",
            "community-trained on WikiArt/ArtEmis (not CompVis), first hosted at eaidata.bmk.sh; no licence stated; WikiArt images are artworks under their own rights",
            arch=_f16(16384),
        ),
        ModelInfo(
            "sflckr", "vqgan",
            _pair(
                "sflckr",
                [f"{_HEIBOX}/d/73487ab6e5314cb5adba/files/?p=%2Fconfigs%2F2020-11-09T13-31-51-project.yaml&dl=1"],
                [f"{_HEIBOX}/d/73487ab6e5314cb5adba/files/?p=%2Fcheckpoints%2Flast.ckpt&dl=1"],
                config_approx=1603, ckpt_size=4_263_525_412,
            ),
            "landscapes and nature (S-FLCKR)",
            f"{_TAMING}; Net2NetTransformer (segmentation-conditioned), only its first stage is used; Flickr images",
            arch=_f16(1024, "Net2NetTransformer"),
        ),
        ModelInfo(
            "ade20k", "vqgan",
            _pair(
                "ade20k",
                ["https://static.miraheze.org/intercriaturaswiki/b/bf/Ade20k.txt"],
                [f"{_KOOFR}/0f65c2cd-7102-4550-a2bd-07fd383aac9e/files/get/last.ckpt?path=%2F2020-11-20T21-45-44_ade20k_transformer%2Fcheckpoints%2Flast.ckpt"],
            ),
            "indoor and outdoor scenes, buildings, rooms (ADE20K)",
            f"{_TAMING}; Net2NetTransformer (segmentation-conditioned), only its first stage is used",
            arch=_f16(4096, "Net2NetTransformer"),
            pages=("https://k00.fr/ot46cksa",),
            notes="first-stage n_embed is not known from a full config (a truncated copy reads '4…'; 4096 assumed for random-weight builds); size unknown",
        ),
        ModelInfo(
            "ffhq", "vqgan",
            _pair(
                "ffhq",
                [f"{_KOOFR}/0fc005bf-3dca-4079-9d40-cdf38d42cd7a/files/get/2021-04-23T18-19-01-project.yaml?path=%2F2021-04-23T18-19-01_ffhq_transformer%2Fconfigs%2F2021-04-23T18-19-01-project.yaml&force"],
                [f"{_KOOFR}/0fc005bf-3dca-4079-9d40-cdf38d42cd7a/files/get/last.ckpt?path=%2F2021-04-23T18-19-01_ffhq_transformer%2Fcheckpoints%2Flast.ckpt&force"],
                ckpt_approx=3_500 * _MB,
            ),
            "faces (FFHQ), portraits",
            f"{_TAMING}; unconditional Net2NetTransformer, only its first stage is used; FFHQ images CC BY-NC-SA",
            arch=_f16(1024, "Net2NetTransformer"),
            pages=("https://k00.fr/yndvfu95",),
            notes="size: at least 3.5 GB (its weights alone); no published sha256",
        ),
        ModelInfo(
            "celebahq", "vqgan",
            _pair(
                "celebahq",
                [f"{_KOOFR}/6dddf083-40c8-470a-9360-a9dab2a94e96/files/get/2021-04-23T18-11-19-project.yaml?path=%2F2021-04-23T18-11-19_celebahq_transformer%2Fconfigs%2F2021-04-23T18-11-19-project.yaml&force"],
                [f"{_KOOFR}/6dddf083-40c8-470a-9360-a9dab2a94e96/files/get/last.ckpt?path=%2F2021-04-23T18-11-19_celebahq_transformer%2Fcheckpoints%2Flast.ckpt&force"],
            ),
            "celebrity-style faces (CelebA-HQ)",
            f"{_TAMING}; unconditional Net2NetTransformer, only its first stage is used; CelebA-HQ is research-only",
            arch=_f16(1024, "Net2NetTransformer"),
            pages=("https://k00.fr/2xkmielf",),
            notes="transformer size unknown (several GB); no published sha256",
        ),
        ModelInfo(
            "toy", "vqgan",
            (RemoteFile("toy_vqgan.yaml", (), check="yaml"), RemoteFile("toy_vqgan.ckpt", (), check="ckpt")),
            "tests, CPU demos, teaching: a tiny VQGAN trained on vqclip's synthetic scenes",
            "trained in this repository (tools.train_toy_vqgan); ships with vqclip under its licence",
            packaged=True,
        ),
    ]


def _denoiser_entries() -> list[ModelInfo]:
    # The CycleGAN generator paper 000's authors publish for post_denoise: cyclegan (pixel engine);
    # the URL is the one their code downloads (beautifier.py and Text2Video.ipynb of
    # github.com/pschaldenbrand/Text2Video). Size and sha256 are not published.
    return [
        ModelInfo(
            "cyclegan_text2video", "denoiser",
            (RemoteFile("cyclegan_text2video_netG_A.pth", ("https://cmu.box.com/shared/static/lxgfgfw9aqia8crfyg5jw0h1gkdv64mk",),
                        approx_bytes=45_500_000, check="none"),),
            "post_denoise: cyclegan for the pixel engine: noisy optimized frames toward photographs",
            "Schaldenbrand, Liu, Oh 2022 (paper 000), netG_A of their CycleGAN (noisy frames -> Flickr30k photos); no licence stated",
            arch={"net": "resnet_9blocks", "ngf": 64, "norm": "instance", "dropout": True},
            pages=("https://pschaldenbrand.github.io/text2video/",),
            notes="no published size or sha256: vqclip.models.cyclegan.load_generator checks it builds a ResnetGenerator",
        ),
    ]


# Each builder returns the entries of one kind; add a builder here for a new kind of model.
_ENTRY_BUILDERS: tuple[Callable[[], list[ModelInfo]], ...] = (_vqgan_entries, _denoiser_entries)


def _entries() -> dict[str, ModelInfo]:
    return {info.name: info for build in _ENTRY_BUILDERS for info in build()}


def list_models(kind: str | None = None) -> list[str]:
    """Names of the registry's models (optionally of one kind), in table order."""
    return [name for name, info in _entries().items() if kind is None or info.kind == kind]


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; ModelError listing the known names if there is none."""
    entries = _entries()
    if name not in entries:
        raise ModelError(f"model {name!r} is not in the registry; allowed: {', '.join(entries)}")
    return entries[name]


# --- cache ---------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """$VQCLIP_CACHE if set, else ~/.cache/vqclip."""
    env = os.environ.get("VQCLIP_CACHE", "").strip()
    return Path(env).expanduser() if env else Path("~/.cache/vqclip").expanduser()


def packaged_dir() -> Path:
    """The folder of the weights that ship inside vqclip (the toy pack)."""
    from importlib.resources import files

    return Path(str(files("vqclip.toy"))) / "weights"


def model_dir(info: ModelInfo | str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder a model's files live in: packaged weights, or <cache>/<kind>/."""
    info = get_model_info(info) if isinstance(info, str) else info
    if info.packaged:
        return packaged_dir()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / info.kind


def _packaged_paths(info: ModelInfo) -> tuple[Path, ...]:
    folder = model_dir(info)
    paths = tuple(folder / f.filename for f in info.files)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelError(
            f"model {info.name!r} ships inside vqclip, but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing; "
            "rebuild the toy pack with `python -m tools.train_toy_vqgan` or reinstall vqclip"
        )
    return paths


def _manual_hint(info: ModelInfo, folder: Path) -> str:
    names = " and ".join(f.filename for f in info.files)
    sources = [f"{f.filename}: {f.urls[0]}" for f in info.files if f.urls]
    hint = f"download them by hand and put them in {folder} as {names}"
    if sources:
        hint += f" (from {'; '.join(sources)}"
        hint += f"; or the files at {', '.join(info.pages)})" if info.pages else ")"
    return hint


def download_model(name: str | ModelInfo, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[Path, ...]:
    """Fetch a model's files into the cache (verified, resumable, mirror by mirror); return their paths."""
    info = get_model_info(name) if isinstance(name, str) else name
    if info.packaged:
        return _packaged_paths(info)
    folder = model_dir(info, cache_dir)
    paths, failures = [], []
    for remote in info.files:
        try:
            paths.append(fetch_file(remote, folder / remote.filename, progress=progress))
        except DownloadError as exc:
            failures.append(str(exc))
    if failures:
        raise DownloadError(
            f"could not download model {info.name!r}: every mirror failed ({' | '.join(failures)}); "
            + _manual_hint(info, folder)
        )
    return tuple(paths)


def resolve_vqgan(spec: str | Mapping[str, Any], cache_dir: str | os.PathLike | None = None, download: bool = True) -> tuple[Path, Path]:
    """(config_path, checkpoint_path) for a registry name or {"config": path, "checkpoint": path}."""
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"config", "checkpoint"}
        if unknown or not {"config", "checkpoint"} <= set(spec):
            raise ConfigError(f"VQGAN model {dict(spec)!r} is not usable; allowed: a registry name or {{'config': .yaml path, 'checkpoint': .ckpt path}}")
        config, ckpt = Path(spec["config"]).expanduser(), Path(spec["checkpoint"]).expanduser()
        for key, path in (("config", config), ("checkpoint", ckpt)):
            if not path.is_file():
                raise ModelError(f"VQGAN {key} file {str(path)!r} does not exist; give the path of an existing file")
        return config, ckpt
    if not isinstance(spec, str):
        raise ConfigError(f"VQGAN model {spec!r} is not usable; allowed: a registry name or {{'config': path, 'checkpoint': path}}")
    info = get_model_info(spec)
    if info.kind != "vqgan":
        raise ConfigError(f"model {spec!r} is a {info.kind}, not a VQGAN; allowed: {', '.join(list_models('vqgan'))}")
    if info.packaged:
        config, ckpt = _packaged_paths(info)
        return config, ckpt
    folder = model_dir(info, cache_dir)
    paths = [folder / f.filename for f in info.files]
    if all(is_cached(p, f) for p, f in zip(paths, info.files)):
        return paths[0], paths[1]
    if not download:
        raise ModelError(f"model {spec!r} is not downloaded; run `vqclip models download {spec}`, or {_manual_hint(info, folder)}")
    config, ckpt = download_model(info, cache_dir=cache_dir, progress=True)
    return config, ckpt


# --- the table `vqclip models list` prints ---------------------------------------------------------


def _human(n: int | None, exact: bool) -> str:
    if n is None:
        return "?"
    text = f"{n / _GB:.2f} GB" if n >= _GB else f"{n / _MB:.0f} MB" if n >= _MB else f"{n / 1000:.0f} kB"
    return text if exact else "~" + text


def model_status(info: ModelInfo, cache_dir: str | os.PathLike | None = None) -> str:
    """Whether a model's files are here: yes | partial | no, or packaged | missing for built-in weights."""
    folder = model_dir(info, cache_dir)
    paths = [folder / f.filename for f in info.files]
    if info.packaged:
        return "packaged" if all(p.is_file() for p in paths) else "missing"
    if all(is_cached(p, f, deep=False) for p, f in zip(paths, info.files)):
        return "yes"
    if any(p.is_file() or p.with_name(p.name + ".part").is_file() for p in paths):
        return "partial"
    return "no"


def model_size_text(info: ModelInfo, cache_dir: str | os.PathLike | None = None) -> str:
    """A model's size for people: exact ("1.20 GB"), approximate ("~900 MB") or "?" when unpublished."""
    if info.packaged:
        folder = model_dir(info)
        sizes = [(folder / f.filename).stat().st_size for f in info.files if (folder / f.filename).is_file()]
        return _human(sum(sizes), True) if sizes else "?"
    ckpt = info.files[-1]  # the checkpoint is what costs the download time and disk
    return _human(ckpt.size or ckpt.approx_bytes, ckpt.size is not None)


def format_model_table(cache_dir: str | os.PathLike | None = None) -> str:
    """The table `vqclip models list` prints: name, size, what it is for, downloaded or not."""
    rows = [("name", "size", "good for", "downloaded")]
    for name in list_models():
        info = get_model_info(name)
        rows.append((name, model_size_text(info, cache_dir), info.good_for, model_status(info, cache_dir)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    kinds = ", ".join(dict.fromkeys(f"{get_model_info(n).kind}/" for n in list_models() if not get_model_info(n).packaged))
    lines.append(f"cache: {root}  ({kinds}; set $VQCLIP_CACHE or --cache-dir to move it)")
    lines.append("download: vqclip models download NAME   (~ = approximate size, ? = not published)")
    return "\n".join(lines)
