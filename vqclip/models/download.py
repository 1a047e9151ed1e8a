"""Resumable, verified downloads over plain urllib, falling through a list of mirrors.

A file is streamed into `<file>.part` (resumed with an HTTP Range request when a part exists),
then checked — exact size, sha256 where one is published, and that it loads — and only then
renamed into place. A verified file gets a small `<file>.sha256` note (size, mtime, hash) so a
cache hit is re-checked without hashing a gigabyte every time.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vqclip.errors import DownloadError, ModelError

__all__ = ["RemoteFile", "fetch_file", "is_cached", "sha256_of", "MirrorFailed"]

_CHUNK = 1 << 20
_TIMEOUT_S = 30
_USER_AGENT = "vqclip (+https://pypi.org/project/vqclip/) urllib"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a model: its name in the cache, its mirrors, and what it must verify to."""

    filename: str
    urls: tuple[str, ...]
    size: int | None = None  # exact bytes, when a mirror publishes them
    sha256: str | None = None  # lower-case hex, when published
    approx_bytes: int | None = None  # for tables and progress when the exact size is unknown
    check: str = "ckpt"  # how to prove it loads: "yaml" (taming config) | "ckpt" (state_dict) | "none"


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


def is_cached(path: Path, remote: RemoteFile, deep: bool = True) -> bool:
    """True if `path` holds a file that verifies against `remote` (cheap once a note exists)."""
    if not path.is_file():
        return False
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return False
    if not deep:
        return True
    note = _note_path(path)
    st = path.stat()
    if note.is_file():
        parts = note.read_text(encoding="ascii", errors="replace").split()
        if len(parts) == 3 and parts[:2] == [str(st.st_size), str(st.st_mtime_ns)]:
            return remote.sha256 is None or parts[2] == remote.sha256
    # placed by hand or changed since: verify once, then remember
    try:
        digest = _verify(path, remote)
    except MirrorFailed:
        return False
    _write_note(path, digest)
    return True


def _verify(path: Path, remote: RemoteFile, expected_total: int | None = None) -> str:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise MirrorFailed(f"got {size} bytes, expected {remote.size}")
    if remote.size is None and expected_total is not None and size != expected_total:
        raise MirrorFailed(f"got {size} bytes, the server announced {expected_total} (truncated)")
    if size == 0:
        raise MirrorFailed("got an empty file")
    digest = sha256_of(path)
    if remote.sha256 is not None and digest != remote.sha256:
        raise MirrorFailed(f"sha256 {digest[:12]}… does not match the published {remote.sha256[:12]}…")
    _check_loads(path, remote.check)
    return digest


def _check_loads(path: Path, check: str) -> None:
    if check == "yaml":
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MirrorFailed(f"not a YAML file ({type(exc).__name__})") from exc
        if not isinstance(data, dict) or "model" not in data:
            raise MirrorFailed("not a taming config (no 'model:' section; an HTML error page?)")
    elif check == "ckpt":
        from vqclip.models.safe_load import safe_load_checkpoint

        try:
            data = safe_load_checkpoint(path, mmap=True)
        except ModelError as exc:  # includes UnsafeCheckpointError: a refused file is no download
            raise MirrorFailed(str(exc)) from exc
        if "state_dict" not in data:
            raise MirrorFailed("checkpoint has no 'state_dict'")


def _open(url: str, start: int):
    headers = {"User-Agent": _USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)


def _stream(url: str, part: Path, remote: RemoteFile, progress: bool) -> int | None:
    """Download url into part (resuming it); return the total size the server announced."""
    from vqclip.progress import auto_bar

    start = part.stat().st_size if part.is_file() else 0
    if remote.size is not None and start > remote.size:
        part.unlink()
        start = 0
    if remote.size is not None and start == remote.size:
        return remote.size  # complete from an earlier run: just verify it
    try:
        response = _open(url, start)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the part may be complete
            return None
        raise
    with response:
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
        with open(part, mode) as fh, auto_bar(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=remote.filename, disable=not progress, leave=False
        ) as bar:
            written = 0
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                fh.write(block)
                written += len(block)
                bar.update(len(block))
    if length and length.isdigit() and written < int(length):
        # http.client returns a short body quietly when the peer hangs up; keep the part, resume it
        raise ConnectionResetError(f"connection closed after {start + written} of {start + int(length)} bytes")
    return start + int(length) if length and length.isdigit() else None


def fetch_file(remote: RemoteFile, dest: Path, progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Make `dest` a verified copy of `remote`, trying each mirror in turn; DownloadError if none works."""
    dest = Path(dest)
    if is_cached(dest, remote):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for url in remote.urls:
        for attempt in range(3):
            resumed = part.is_file() and part.stat().st_size > 0
            before = part.stat().st_size if resumed else 0
            try:
                total = _stream(url, part, remote, progress)
                digest = _verify(part, remote, expected_total=total)
            except (MirrorFailed, OSError, http.client.HTTPException, ValueError) as exc:
                reason = _reason(exc)
                grew = part.is_file() and part.stat().st_size > before
                if isinstance(exc, MirrorFailed) or not _transient(exc):
                    part.unlink(missing_ok=True)  # a bad file: never resume from it
                    retry = resumed and isinstance(exc, MirrorFailed)  # resumed bytes may be the bad ones
                else:
                    retry = grew  # the connection dropped mid-file: resume from where it stopped
                if retry and attempt < 2:
                    continue
                failures.append(f"{url}: {reason}")
                if log:
                    log(f"{remote.filename}: {url} failed ({reason}); trying the next mirror")
                break
            os.replace(part, dest)
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
