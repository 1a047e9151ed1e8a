"""`vqclip doctor`: check this machine and print a pass/fail table with what to do for each problem.

Checks, in order: Python, the packages vqclip needs (with versions), torch, CUDA/GPU and free
VRAM, the bundled ffmpeg, the model cache folder, the toy model pack, whether the model hosts
answer (short timeout; reported, never fatal), and a two-second toy render through the real
render loop. Exit code 1 when any check FAILs, else 0 (WARN and SKIP do not fail).
"""

from __future__ import annotations

import concurrent.futures
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["CheckResult", "check_models", "run_checks", "format_report", "run_doctor", "REQUIRED_PACKAGES", "EXTRA_HOSTS"]

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"

# distribution name -> (import name, minimum version or None); pyproject.toml's dependencies
REQUIRED_PACKAGES: dict[str, tuple[str, str | None]] = {
    "torch": ("torch", "2.1"),
    "torchvision": ("torchvision", None),
    "open_clip_torch": ("open_clip", "2.20"),
    "taming-transformers-rom1504": ("taming.modules.diffusionmodules.model", "0.0.6"),
    "einops": ("einops", None),
    "kornia": ("kornia", "0.7"),
    "imageio": ("imageio", "2.31"),
    "imageio-ffmpeg": ("imageio_ffmpeg", "0.5"),
    "moviepy": ("moviepy", "2.2.1"),
    "pyyaml": ("yaml", "6"),
    "omegaconf": ("omegaconf", "2.3"),
    "numexpr": ("numexpr", "2.8"),
    "tqdm": ("tqdm", "4.60"),
    "filelock": ("filelock", "3.12"),
    "safetensors": ("safetensors", "0.4"),
    "numpy": ("numpy", None),
    "pillow": ("PIL", None),
}
OPTIONAL_PACKAGES: dict[str, str] = {"ipywidgets": "notebook", "librosa": "audio"}
# Hosts of the CLIP weights (open_clip); the VQGAN mirrors come from the registry.
EXTRA_HOSTS = ("https://huggingface.co/", "https://openaipublic.azureedge.net/")
HOST_TIMEOUT_S = 3.0
MIN_CACHE_FREE_BYTES = 2_000_000_000  # one f16 checkpoint is ~1 GB, and it is written beside a .part
MIN_FREE_VRAM_BYTES = 4 * 2**30  # a 256x256 render with ViT-B/32 in mixed precision fits in ~4 GiB


@dataclass
class CheckResult:
    """One row of the doctor's table."""

    name: str
    status: str  # PASS | WARN | FAIL | SKIP
    detail: str
    fix: str = ""  # what to do, for WARN and FAIL


# --- helpers ---------------------------------------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def _at_least(version: str, minimum: str) -> bool:
    return _version_tuple(version) >= _version_tuple(minimum)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


# --- the checks ------------------------------------------------------------------------------------


def check_python() -> CheckResult:
    """Python 3.10 or newer."""
    version = platform.python_version()
    detail = f"{version} ({sys.executable})"
    if sys.version_info < (3, 10):
        return CheckResult("python", FAIL, detail, "vqclip needs Python >= 3.10; make the virtual environment with a newer python3")
    return CheckResult("python", PASS, detail)


def check_packages() -> list[CheckResult]:
    """Each required distribution installed, new enough and importable; optional ones reported."""
    results = []
    for dist, (module, minimum) in REQUIRED_PACKAGES.items():
        name = f"package {dist}"
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            results.append(CheckResult(name, FAIL, "not installed", f"pip install -e . (from the vqclip checkout) or pip install '{dist}'"))
            continue
        if minimum and not _at_least(version, minimum):
            results.append(CheckResult(name, FAIL, f"{version} (needs >= {minimum})", f"pip install -U '{dist}>={minimum}'"))
            continue
        try:
            __import__(module)
        except Exception as exc:  # a broken install shows up as any exception at import
            results.append(CheckResult(name, FAIL, f"{version}, but `import {module}` fails: {type(exc).__name__}: {exc}",
                                       f"reinstall it: pip install --force-reinstall '{dist}'"))
            continue
        results.append(CheckResult(name, PASS, version))
    for dist, extra in OPTIONAL_PACKAGES.items():
        try:
            results.append(CheckResult(f"package {dist}", PASS, f"{metadata.version(dist)} (optional, [{extra}])"))
        except metadata.PackageNotFoundError:
            results.append(CheckResult(f"package {dist}", SKIP, f"not installed (optional; pip install -e '.[{extra}]' to use it)"))
    return results


def check_torch() -> CheckResult:
    """torch's version and the CUDA version it was built for."""
    try:
        import torch
    except Exception as exc:
        return CheckResult("torch", FAIL, f"import fails: {exc}", "install torch for your platform (see pytorch.org); on Colab use the preinstalled one")
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return CheckResult("torch", PASS, f"{torch.__version__}, {build}, {torch.get_num_threads()} CPU threads")


def check_gpu() -> CheckResult:
    """A CUDA GPU, its name and free memory (no GPU is a warning: the toy pack runs on a CPU)."""
    try:
        import torch
    except Exception:
        return CheckResult("cuda gpu", SKIP, "torch is not importable")
    if not torch.cuda.is_available():
        why = "torch is a CPU-only build" if not torch.version.cuda else "no CUDA device visible"
        return CheckResult(
            "cuda gpu", WARN, f"none ({why}); renders run on the CPU",
            "fine for the toy pack; for real checkpoints use a GPU: on Colab, Runtime > Change runtime type > T4 GPU; "
            "elsewhere install a CUDA build of torch (pytorch.org)",
        )
    try:
        index = torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        free, total = torch.cuda.mem_get_info(index)
    except Exception as exc:
        return CheckResult("cuda gpu", FAIL, f"CUDA is available but the device fails: {exc}",
                           "restart the runtime; check `nvidia-smi` and that the driver matches torch's CUDA version")
    detail = f"{name}, {_gib(free)} free of {_gib(total)}"
    if free < MIN_FREE_VRAM_BYTES:
        return CheckResult("cuda gpu", WARN, detail, "little free GPU memory: close other notebooks/processes, or render smaller (size.width/height) with fewer cutouts (generation.cutn)")
    return CheckResult("cuda gpu", PASS, detail)


def check_ffmpeg() -> CheckResult:
    """The ffmpeg binary bundled with imageio-ffmpeg runs."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        proc = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20)
    except Exception as exc:
        return CheckResult("ffmpeg", FAIL, f"{type(exc).__name__}: {exc}", "pip install --force-reinstall imageio-ffmpeg (it ships the ffmpeg binary)")
    if proc.returncode != 0:
        return CheckResult("ffmpeg", FAIL, f"{exe} exits {proc.returncode}", "pip install --force-reinstall imageio-ffmpeg")
    first = (proc.stdout or proc.stderr).strip().splitlines()[:1]
    version = first[0].split(" Copyright")[0] if first else "unknown version"
    return CheckResult("ffmpeg", PASS, f"{version} ({exe})")


def _cache_dir() -> Path:
    from vqclip.models.registry import default_cache_dir

    return default_cache_dir()


def check_cache_dir(cache_dir: str | os.PathLike | None = None) -> CheckResult:
    """The model cache folder can be created and written, with room for a checkpoint."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else _cache_dir()
    fix = f"set VQCLIP_CACHE to a writable folder (on Colab, one on the mounted Google Drive), or fix the permissions of {folder}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True) as fh:
            fh.write(b"ok")
            fh.flush()
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return CheckResult("cache dir", FAIL, f"{folder}: not writable ({exc.strerror or exc})", fix)
    detail = f"{folder} (writable, {free / 1e9:.1f} GB free)"
    if free < MIN_CACHE_FREE_BYTES:
        return CheckResult("cache dir", WARN, detail, "under 2 GB free: a real checkpoint is ~1 GB; free space or point VQCLIP_CACHE elsewhere")
    return CheckResult("cache dir", PASS, detail)


def check_toy_pack() -> CheckResult:
    """The toy model pack's four files ship with the package."""
    folder = Path(__file__).parent / "toy" / "weights"
    names = ("toy_vqgan.yaml", "toy_vqgan.ckpt", "toy_clip.json", "toy_clip.pt")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        return CheckResult("toy model pack", FAIL, f"missing in {folder}: {', '.join(missing)}",
                           "reinstall vqclip, or rebuild them: python -m tools.train_toy_vqgan; python -m tools.train_toy_clip")
    size = sum((folder / n).stat().st_size for n in names)
    return CheckResult("toy model pack", PASS, f"{len(names)} files, {size / 1e6:.1f} MB ({folder})")


def check_models(cache_dir: str | os.PathLike | None = None) -> CheckResult:
    """The cache state of every registry model, the same `model_status` that `vqclip models list` and the resolver use."""
    from vqclip.models.registry import all_models, model_status, user_registry_file

    try:
        states = {f"{info.kind}:{info.name}": model_status(info, cache_dir) for info in all_models()}
    except Exception as exc:  # a broken user models.yaml surfaces here as a row, not a crash
        return CheckResult("models", FAIL, f"{type(exc).__name__}: {exc}", f"fix or remove {user_registry_file()}")
    ready = sorted(k for k, s in states.items() if s in ("yes", "local", "packaged"))
    bad = sorted(k for k, s in states.items() if s in ("invalid", "missing"))
    detail = f"{len(ready)}/{len(states)} ready ({', '.join(ready) or 'none'})"
    if bad:
        return CheckResult("models", WARN, detail + f"; failing their check: {', '.join(bad)}",
                           "delete those files and run `vqclip models download NAME` again (see `vqclip models list`)")
    return CheckResult("models", PASS, detail)


def model_hosts() -> list[str]:
    """The distinct hosts (as https://host/) of every registry mirror plus the CLIP weight hosts."""
    from vqclip.models.registry import all_models

    urls: list[str] = [url for info in all_models() for remote in info.files for url in remote.urls]
    urls.extend(EXTRA_HOSTS)
    hosts: dict[str, None] = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            hosts.setdefault(f"{parts.scheme}://{parts.netloc}/", None)
    return list(hosts)


def probe_host(url: str, timeout: float = HOST_TIMEOUT_S) -> str | None:
    """None if the host answers an HTTP HEAD (any status), else why not."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "vqclip-doctor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered, if only to refuse a bare HEAD
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def check_hosts(hosts: Iterable[str] | None = None, timeout: float = HOST_TIMEOUT_S,
                probe: Callable[[str, float], str | None] | None = None) -> CheckResult:
    """Which model hosts answer within `timeout` seconds, all probed at once; never a FAIL."""
    hosts = list(hosts) if hosts is not None else model_hosts()
    probe = probe or probe_host
    if not hosts:
        return CheckResult("model hosts", SKIP, "no hosts to check")
    down: dict[str, str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(hosts)))
    futures = {pool.submit(probe, h, timeout): h for h in hosts}
    done, not_done = concurrent.futures.wait(futures, timeout=timeout + 1.0)
    for fut in done:
        err = fut.exception() or fut.result()
        if err:
            down[futures[fut]] = str(err)
    for fut in not_done:
        down[futures[fut]] = "no answer in time"
    pool.shutdown(wait=False, cancel_futures=True)  # a stuck probe must not hold the doctor up
    up = len(hosts) - len(down)
    names = [urllib.parse.urlsplit(h).netloc for h in hosts if h in down]
    if not down:
        return CheckResult("model hosts", PASS, f"{up}/{len(hosts)} answer")
    detail = f"{up}/{len(hosts)} answer; unreachable: {', '.join(names)}"
    if up == 0:
        fix = ("offline: the toy pack and local files still work; download real checkpoints where there is "
               "network (`vqclip models download NAME`) and copy the cache folder here, or set HTTPS_PROXY")
    else:
        fix = "some mirrors are down or blocked; downloads try the next mirror, so this is usually fine"
    return CheckResult("model hosts", WARN, detail, fix)


def check_toy_render(seconds_budget: float = 60.0) -> CheckResult:
    """A two-frame 64x64 render of the default preset with the toy models, through vqclip.production.render."""
    try:
        from vqclip.settings.render import load_config
        from vqclip.production.render import render
    except ImportError as exc:
        return CheckResult("toy render", SKIP, f"skipped: engine not installed ({exc})", "")
    overrides = [
        "models.vqgan=toy", "models.clip=[{spec: toy, weight: 1.0}]", "models.download=false",
        "size.width=64", "size.height=64", "animation.frames=2",
        "generation.seed=0", "generation.iterations_first_frame=6", "generation.iterations_per_frame=3",
        "generation.cutouts.cutn=8", "output.images_interval=0",
    ]
    start = time.time()
    try:
        cfg = load_config("default", overrides)
        with tempfile.TemporaryDirectory(prefix="vqclip-doctor-") as tmp:
            result = render(cfg, Path(tmp) / "render")
            frames = len(result.frames)
            video = bool(result.video and Path(result.video).is_file() and Path(result.video).stat().st_size > 0)
    except Exception as exc:
        return CheckResult("toy render", FAIL, f"{type(exc).__name__}: {exc}",
                           "run `vqclip render default -o renders/default` to see the full error; reinstall vqclip if the toy pack is missing")
    elapsed = time.time() - start
    from vqclip.production.precision import resolve_device

    device = resolve_device(cfg.generation.device)  # the device render used
    detail = f"{frames} frames{' + video' if video else ''} in {elapsed:.1f} s on {device}"
    if frames != 2 or (cfg.output.video and not video):
        return CheckResult("toy render", FAIL, detail + " (expected 2 frames and a video)",
                           "run `vqclip render default -o renders/default` and read its error")
    if elapsed > seconds_budget:
        return CheckResult("toy render", WARN, detail, "slow machine or a busy CPU: real renders will take long; use a GPU")
    return CheckResult("toy render", PASS, detail)


def run_checks(skip_render: bool = False, hosts: Iterable[str] | None = None,
               probe: Callable[[str, float], str | None] | None = None) -> list[CheckResult]:
    """Every check, in table order."""
    results = [check_python(), *check_packages(), check_torch(), check_gpu(), check_ffmpeg(), check_cache_dir(), check_toy_pack(), check_models()]
    results.append(check_hosts(hosts, probe=probe))
    results.append(CheckResult("toy render", SKIP, "skipped (--no-render)") if skip_render else check_toy_render())
    return results


def format_report(results: list[CheckResult]) -> str:
    """The table (check, status, detail), then a numbered what-to-do list for WARN and FAIL rows."""
    width = max(len(r.name) for r in results)
    lines = [f"{'check'.ljust(width)}  status  detail", f"{'-' * width}  ------  {'-' * 40}"]
    lines += [f"{r.name.ljust(width)}  {r.status:<6}  {r.detail}" for r in results]
    todo = [r for r in results if r.status in (FAIL, WARN) and r.fix]
    fails = sum(r.status == FAIL for r in results)
    warns = sum(r.status == WARN for r in results)
    lines.append("")
    if todo:
        lines.append("what to do:")
        lines += [f"  {i}. [{r.status}] {r.name}: {r.fix}" for i, r in enumerate(todo, 1)]
        lines.append("")
    verdict = "all good" if not fails and not warns else f"{fails} failed, {warns} warning{'s' if warns != 1 else ''}"
    lines.append(f"vqclip doctor: {verdict}" + (" (vqclip can run)" if not fails else " (fix the FAIL rows first)"))
    return "\n".join(lines)


def run_doctor(skip_render: bool = False) -> int:
    """Run every check, print the report; exit code 1 if any check failed, else 0."""
    from vqclip import __version__

    print(f"vqclip {__version__} doctor on {platform.platform()}", flush=True)
    results = run_checks(skip_render=skip_render)
    print(format_report(results))
    return 1 if any(r.status == FAIL for r in results) else 0
