"""Resume state: everything needed to continue a render exactly where it stopped.

Colab sessions disconnect, so the render saves ``resume.pt`` in its output folder at every frame
boundary (and when stopped mid-frame): the engine's tensors, the optimizer and grad-scaler state,
the RNG states of torch, numpy and Python, the frame and iteration reached, the seed and a hash of
the settings that shape the frames. Files are written beside the target and renamed into place, so
a disconnect during a save leaves the previous state intact. Loading uses ``weights_only=True``:
the file holds tensors and plain values only.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqclip.errors import ConfigError

__all__ = ["STATE_FILE", "save_state", "load_state", "capture_rng", "restore_rng", "atomic_write_bytes"]

STATE_FILE = "resume.pt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    import errno
    import shutil

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # any error, Ctrl-C included: no half-written temp file stays behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise ConfigError(f"disk full: cannot write {path.name!r} in {str(path.parent)!r} "
                              f"({len(data) / 2**20:.1f} MiB needed, {free / 2**20:.1f} MiB free); free some space and resume with --resume") from None
        raise


def capture_rng() -> dict[str, Any]:
    """The RNG states of torch (CPU and CUDA), numpy and Python, as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(out_dir: Path, state: dict[str, Any]) -> Path:
    """Write the resume state atomically to ``out_dir/resume.pt``."""
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    path = Path(out_dir) / STATE_FILE
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_state(out_dir: Path) -> dict[str, Any]:
    """Read ``out_dir/resume.pt`` (ConfigError when there is none or it is unreadable)."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"--resume: {str(path)!r} does not exist; there is no render to continue in {str(out_dir)!r} (run without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise ConfigError(f"--resume: {str(path)!r} cannot be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}); "
                          f"delete it to start over") from None
    # A readable file of the wrong shape (another tool's, an older vqclip's) must not fail deep inside the render.
    kinds = {"seed": int, "config_hash": str, "total_iterations": int, "rng": dict}
    wrong = [k for k, t in kinds.items() if not isinstance(state, dict) or not isinstance(state.get(k), t) or isinstance(state.get(k), bool)]
    if isinstance(state, dict) and not wrong and not (isinstance(state.get("frame"), int) or isinstance(state.get("chunk"), int)):
        wrong = ["frame or chunk"]
    if wrong:
        raise ConfigError(f"--resume: {str(path)!r} is not a vqclip resume state (missing or wrong: {', '.join(wrong)}); "
                          f"delete it to start over, or render to a new folder")
    return state
