"""Resumable, verified downloads over plain urllib, falling through a list of mirrors; safe for many processes.

A file is streamed into `<file>.part` (resumed with an HTTP Range request when a part exists) while
the process holds `.locks/<file>.lock` (filelock: released by the OS if the process dies), so two processes
or notebooks fetching the same file take turns and the second finds it done. The part is checked —
exact size, sha256 where published, and always that its content is what the entry says (a taming
YAML, a checkpoint, safetensors...; an HTML page is refused) — and only then atomically renamed into
place. Each mirror gets an overall deadline, so a host that drips bytes is abandoned. A verified file
gets a small `<file>.sha256` note (size, mtime, hash) so a cache hit is re-checked without hashing a
gigabyte every time. Progress goes out as events through a callback; nothing here draws.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vqclip.errors import DownloadError, ModelError

__all__ = ["RemoteFile", "CHECKS", "is_safetensors", "fetch_file", "file_state", "is_cached", "sha256_of", "MirrorFailed", "check_content"]

CHECKS = ("yaml", "ckpt", "weights", "state_dict", "json", "any")
_CHUNK = 1 << 20
_TIMEOUT_S = 30  # per socket operation
BASE_DEADLINE_S = 120.0  # per mirror, plus the time the expected size takes at MIN_RATE_BPS
MIN_RATE_BPS = 100_000  # a mirror slower than ~100 kB/s on average is abandoned for the next one
_EVENT_EVERY_S = 0.2
_USER_AGENT = "vqclip (+https://pypi.org/project/vqclip/) urllib"
_MIN_BINARY_BYTES = 1024  # no real checkpoint or weights file is smaller


@dataclass(frozen=True)
class RemoteFile:
    """One file of a model: its name in the cache, its mirrors, and what it must verify to."""

    filename: str
    urls: tuple[str, ...]
    size: int | None = None  # exact bytes, when a mirror publishes them
    sha256: str | None = None  # lower-case hex, when published
    approx_bytes: int | None = None  # for tables and progress when the exact size is unknown
    check: str = "any"  # the content check (see CHECKS and vqclip/models/registry/README.md)
    min_size: int | None = None  # smaller files are refused
    path: str | None = None  # a local file the user named instead of the cache


class MirrorFailed(Exception):
    """One mirror did not give a verified file (the next mirror is tried)."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _note_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_note(path: Path, digest: str) -> None:
    st = path.stat()
    try:
        _note_path(path).write_text(f"{st.st_size} {st.st_mtime_ns} {digest}\n", encoding="ascii")
    except OSError:
        pass  # a read-only cache (a shared Drive folder) still works; it is just re-hashed next time


def file_state(path: Path, remote: RemoteFile) -> str:
    """ok (verified) | partial (a .part is there) | invalid (present, fails its check) | absent."""
    path = Path(path)
    if not path.is_file():
        return "partial" if path.with_name(path.name + ".part").is_file() else "absent"
    st = path.stat()
    note = _note_path(path)
    if note.is_file():
        parts = note.read_text(encoding="ascii", errors="replace").split()
        if len(parts) == 3 and parts[:2] == [str(st.st_size), str(st.st_mtime_ns)]:
            return "ok" if remote.sha256 is None or parts[2] == remote.sha256 else "invalid"
    # placed by hand or changed since: verify once, then remember
    try:
        digest = _verify(path, remote)
    except MirrorFailed:
        return "invalid"
    _write_note(path, digest)
    return "ok"


def is_cached(path: Path, remote: RemoteFile) -> bool:
    """True if `path` holds a file that verifies against `remote` (cheap once a note exists)."""
    return file_state(path, remote) == "ok"


def _verify(path: Path, remote: RemoteFile, expected_total: int | None = None) -> str:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise MirrorFailed(f"got {size} bytes, expected {remote.size}")
    if remote.size is None and expected_total is not None and size != expected_total:
        raise MirrorFailed(f"got {size} bytes, the server announced {expected_total} (truncated)")
    if size == 0:
        raise MirrorFailed("got an empty file")
    if remote.min_size is not None and size < remote.min_size:
        raise MirrorFailed(f"got {size} bytes, fewer than the {remote.min_size} such a file has at least")
    digest = sha256_of(path)
    if remote.sha256 is not None and digest != remote.sha256:
        raise MirrorFailed(f"sha256 {digest[:12]}… does not match the published {remote.sha256[:12]}…")
    check_content(path, remote.check)
    return digest


def _looks_like_html(head: bytes) -> bool:
    text = head[:2048].lstrip().lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text[:512]


def is_safetensors(path: Path) -> bool:
    """True if `path` starts with a safetensors header (a little-endian length, then a JSON object)."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return False
        n = int.from_bytes(raw, "little")
        if not 2 <= n <= min(100_000_000, path.stat().st_size - 8):
            return False
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
    return isinstance(header, dict)


def check_content(path: Path, check: str) -> None:
    """Raise MirrorFailed unless `path` holds what `check` says (see CHECKS); HTML is always refused."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if _looks_like_html(head):
        raise MirrorFailed("got an HTML page (a sign-in, quota or error page), not a model file")
    if check == "yaml":
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MirrorFailed(f"not a YAML file ({type(exc).__name__})") from exc
        if not isinstance(data, dict) or "model" not in data:
            raise MirrorFailed("not a taming config (no 'model:' section)")
    elif check == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MirrorFailed(f"not a JSON file ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise MirrorFailed("not a JSON object")
    elif check in ("ckpt", "weights", "state_dict"):
        if path.stat().st_size < _MIN_BINARY_BYTES:
            raise MirrorFailed(f"got {path.stat().st_size} bytes, too small for model weights")
        if check != "ckpt" and is_safetensors(path):
            return
        is_zip, is_pickle = zipfile.is_zipfile(path), head[:1] == b"\x80"
        if not (is_zip or is_pickle):
            raise MirrorFailed("not a PyTorch file (neither a zip nor a pickle)" + ("" if check == "ckpt" else " nor safetensors"))
        from vqclip.models.safe_load import load_weights, safe_load_checkpoint

        try:  # weights: tensors only, as the CLIP loader reads them; ckpt/state_dict: the restricted unpickler
            data = load_weights(path, "downloaded weights") if check == "weights" else safe_load_checkpoint(path, mmap=True)
        except ModelError as exc:  # includes UnsafeCheckpointError: a refused file is no download
            raise MirrorFailed(str(exc)) from exc
        if check == "ckpt" and "state_dict" not in data:
            raise MirrorFailed("checkpoint has no 'state_dict'")


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": _USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _stream(url: str, part: Path, remote: RemoteFile, emit: Callable[[int, int | None, bool], None], deadline: float) -> int | None:
    """Download url into part (resuming it) before `deadline`; return the total size the server announced."""
    start = part.stat().st_size if part.is_file() else 0
    if remote.size is not None and start > remote.size:
        part.unlink()
        start = 0
    if remote.size is not None and start == remote.size:
        return remote.size  # complete from an earlier run: just verify it
    try:
        response = _open(url, start, max(1.0, min(_TIMEOUT_S, deadline - time.monotonic())))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the part may be complete
            return None
        raise
    with response:
        if "text/html" in (response.headers.get("Content-Type") or "").lower() and remote.check != "any":
            raise MirrorFailed("the mirror answered with an HTML page (a sign-in, quota or error page), not the file")
        status = getattr(response, "status", 200)
        mode = "ab"
        if start and status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise MirrorFailed(f"server resumed at the wrong offset ({response.headers.get('Content-Range')!r})")
        elif start:
            start, mode = 0, "wb"  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else (remote.size or remote.approx_bytes)
        written = 0
        with open(part, mode) as fh:
            emit(start, total, True)
            while True:
                if time.monotonic() > deadline:
                    raise MirrorFailed(f"too slow: {start + written} bytes before the mirror's deadline (under "
                                       f"{MIN_RATE_BPS // 1000} kB/s on average); trying the next mirror")
                block = response.read1(_CHUNK)  # read1: returns what has arrived, so the deadline is checked often
                if not block:
                    break
                fh.write(block)
                written += len(block)
                emit(start + written, total, False)
        emit(start + written, total, True)
    if length and length.isdigit() and written < int(length):
        # http.client returns a short body quietly when the peer hangs up; keep the part, resume it
        raise ConnectionResetError(f"connection closed after {start + written} of {start + int(length)} bytes")
    return start + int(length) if length and length.isdigit() else None


def _deadline_s(remote: RemoteFile) -> float:
    expected = remote.size or remote.approx_bytes or 0
    return BASE_DEADLINE_S + expected / MIN_RATE_BPS


def fetch_file(remote: RemoteFile, dest: Path, callback: Callable[[dict], Any] | None = None, model: str = "",
               log: Callable[[str], None] | None = None, deadline_s: float | None = None) -> Path:
    """Make `dest` a verified copy of `remote`, trying each mirror in turn; DownloadError if none works.

    Emits {"event": "download", "name": model, "file", "bytes", "total"} through `callback`.
    """
    from filelock import FileLock, Timeout

    dest = Path(dest)
    if is_cached(dest, remote):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = [0.0]

    def emit(done: int, total: int | None, force: bool) -> None:
        now = time.monotonic()
        if callback is not None and (force or now - last[0] >= _EVENT_EVERY_S):
            last[0] = now
            callback({"event": "download", "name": model or remote.filename, "file": remote.filename, "bytes": done, "total": total})

    # One process at a time per file: the others wait here, then find the file verified. The lock
    # files stay (deleting one another process may hold is racy), out of sight in .locks/.
    locks = dest.parent / ".locks"
    locks.mkdir(exist_ok=True)
    lock = FileLock(str(locks / (dest.name + ".lock")))
    part = dest.with_name(dest.name + ".part")
    while True:
        try:
            lock.acquire(timeout=_EVENT_EVERY_S * 5)
            break
        except Timeout:  # another process is downloading it: show its progress meanwhile
            try:
                done = part.stat().st_size
            except OSError:  # not started yet, or just renamed into place
                done = 0
            emit(done, remote.size or remote.approx_bytes, False)
    try:
        if is_cached(dest, remote):
            return dest
        return _fetch_locked(remote, dest, emit, log, deadline_s)
    finally:
        lock.release()


def _fetch_locked(remote: RemoteFile, dest: Path, emit, log, deadline_s: float | None) -> Path:
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for url in remote.urls:
        deadline = time.monotonic() + (deadline_s if deadline_s is not None else _deadline_s(remote))
        for attempt in range(3):
            resumed = part.is_file() and part.stat().st_size > 0
            before = part.stat().st_size if resumed else 0
            try:
                total = _stream(url, part, remote, emit, deadline)
                digest = _verify(part, remote, expected_total=total)
            except (MirrorFailed, OSError, http.client.HTTPException, ValueError) as exc:
                reason = _reason(exc)
                grew = part.is_file() and part.stat().st_size > before
                if isinstance(exc, MirrorFailed) or not _transient(exc):
                    part.unlink(missing_ok=True)  # a bad file: never resume from it
                    retry = resumed and isinstance(exc, MirrorFailed) and "too slow" not in reason
                else:
                    retry = grew and time.monotonic() < deadline  # dropped mid-file: resume where it stopped
                if retry and attempt < 2:
                    continue
                failures.append(f"{url}: {reason}")
                if log:
                    log(f"{remote.filename}: {url} failed ({reason}); trying the next mirror")
                break
            os.replace(part, dest)  # atomic: readers see no file or the whole verified file
            _write_note(dest, digest)
            return dest
    raise DownloadError(f"{remote.filename}: " + "; ".join(failures) if failures else f"{remote.filename}: no mirror URL is known")


def _transient(exc: BaseException) -> bool:
    # a connection that dropped mid-file leaves a good prefix worth resuming
    return isinstance(exc, (http.client.IncompleteRead, TimeoutError, ConnectionError)) or (
        isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection dropped after {len(exc.partial)} more bytes"
    return str(exc) or type(exc).__name__
