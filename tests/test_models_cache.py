"""The model cache: verified downloads with events, HTML refused, a deadline per mirror, one file for two
processes, one cache state everywhere, and user entries. Every URL is a local server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import local_http_server
from vqclip.errors import ConfigError, DownloadError, ModelError
from vqclip.models import registry
from vqclip.models.download import RemoteFile, fetch_file, file_state
from vqclip.models.registry import format_model_table, model_status, resolve_model

REPO = Path(__file__).resolve().parents[1]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        body = server.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8" if self.path.startswith("/html/") else "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/drip/"):  # a byte every 50 ms: alive for the socket, hopeless overall
            for i in range(len(body)):
                try:
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        step = 256 * 1024
        for i in range(0, len(body), step):  # slow enough that two clients overlap
            self.wfile.write(body[i:i + step])
            if self.path.startswith("/slow/"):
                time.sleep(0.05)


@pytest.fixture
def server():
    with local_http_server(_Handler, files={}, requests=[]) as srv:
        yield srv


@pytest.fixture
def weights_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("served") / "w.safetensors"
    save_file({"w": torch.arange(400_000, dtype=torch.float32)}, str(path))  # 1.6 MB
    return path.read_bytes()


def _remote(server, prefixes, body: bytes, name="w.safetensors", sha=False, check="weights") -> RemoteFile:
    for p in prefixes:
        server.files[f"/{p}/{name}"] = body
    return RemoteFile(name, tuple(f"{server.url}/{p}/{name}" for p in prefixes), sha256=hashlib.sha256(body).hexdigest() if sha else None,
                      approx_bytes=len(body), check=check)


def test_good_file_downloads_once_and_reports_events(server, weights_bytes, tmp_path):
    remote = _remote(server, ["ok"], weights_bytes, sha=True)
    events = []
    dest = fetch_file(remote, tmp_path / "clip" / remote.filename, callback=events.append, model="tiny")
    assert dest.read_bytes() == weights_bytes
    assert events and all(set(e) == {"event", "name", "file", "bytes", "total"} and e["event"] == "download" for e in events)
    assert events[-1] == {"event": "download", "name": "tiny", "file": "w.safetensors", "bytes": len(weights_bytes), "total": len(weights_bytes)}
    assert [e["bytes"] for e in events] == sorted(e["bytes"] for e in events)
    fetch_file(remote, dest)  # cached: verified from its note, no second request
    assert server.requests == ["/ok/w.safetensors"]
    assert not list(dest.parent.glob("*.part"))


def test_corrupt_file_is_refused_and_the_next_mirror_used(server, weights_bytes, tmp_path):
    remote = _remote(server, ["bad", "ok"], weights_bytes, sha=True)
    server.files["/bad/w.safetensors"] = weights_bytes[:-10] + bytes(10)
    dest = fetch_file(remote, tmp_path / remote.filename)
    assert dest.read_bytes() == weights_bytes and server.requests == ["/bad/w.safetensors", "/ok/w.safetensors"]


@pytest.mark.parametrize("prefix", ["html", "plain"])  # announced as text/html, or served as a binary
def test_an_html_page_is_never_a_model_file(server, tmp_path, prefix):
    page = b"<!DOCTYPE html><html><body>Sign in to continue" + b" " * 5000 + b"</body></html>"
    remote = _remote(server, [prefix], page, name="netG_A.pth", check="state_dict")  # no size, no sha256: like cyclegan
    with pytest.raises(DownloadError, match="HTML page"):
        fetch_file(remote, tmp_path / remote.filename)
    assert not (tmp_path / remote.filename).exists()
    (tmp_path / remote.filename).write_bytes(page)  # placed by hand: present, but never counted as downloaded
    assert file_state(tmp_path / remote.filename, remote) == "invalid"


def test_a_dripping_mirror_is_abandoned_at_its_deadline(server, weights_bytes, tmp_path):
    remote = _remote(server, ["drip", "ok"], weights_bytes)
    start = time.monotonic()
    dest = fetch_file(remote, tmp_path / remote.filename, deadline_s=1.0)
    elapsed = time.monotonic() - start
    assert dest.read_bytes() == weights_bytes and server.requests == ["/drip/w.safetensors", "/ok/w.safetensors"]
    assert elapsed < 6, f"the dripping mirror held the download for {elapsed:.1f} s"
    with pytest.raises(DownloadError, match="too slow"):
        fetch_file(_remote(server, ["drip"], weights_bytes, name="x.safetensors"), tmp_path / "x.safetensors", deadline_s=0.5)


def test_two_processes_downloading_the_same_file_both_succeed_with_one_file(server, weights_bytes, tmp_path):
    body = weights_bytes * 3  # not a valid safetensors any more: check "any" (still not HTML)
    remote = _remote(server, ["slow"], body, name="big.bin", sha=True, check="any")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from vqclip.models.download import RemoteFile, fetch_file
        remote = RemoteFile("big.bin", ({remote.urls[0]!r},), sha256={remote.sha256!r}, check="any")
        print(fetch_file(remote, Path({str(tmp_path / 'cache' / 'big.bin')!r})))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    dest = tmp_path / "cache" / "big.bin"
    assert all(out.strip() == str(dest) for out, _ in outs)
    assert dest.read_bytes() == body
    assert sorted(p.name for p in dest.parent.iterdir()) == [".locks", "big.bin", "big.bin.sha256"]
    assert server.requests.count("/slow/big.bin") == 1  # the second process waited, then found it verified


def _user_file(tmp_path, monkeypatch, text: str) -> Path:
    monkeypatch.setenv("VQCLIP_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "cache" / "models.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_the_cache_state_is_the_same_in_the_table_the_doctor_and_the_resolver(tmp_path, monkeypatch):
    from vqclip.preproduction.doctor import check_models

    monkeypatch.setenv("VQCLIP_CACHE", str(tmp_path))
    folder = tmp_path / "denoiser"
    folder.mkdir()
    (folder / "cyclegan_text2video_netG_A.pth").write_bytes(b"<html><body>Please sign in</body></html>" * 100)
    assert model_status("cyclegan_text2video") == "invalid"
    (row,) = [line for line in format_model_table().splitlines() if line.startswith("cyclegan_text2video ")]
    assert row.endswith(" invalid")
    doctor_row = check_models()
    assert doctor_row.status == "WARN" and "denoiser:cyclegan_text2video" in doctor_row.detail
    with pytest.raises(ModelError, match="'cyclegan_text2video' is not downloaded \\(a file is there but fails its check\\)"):
        resolve_model("cyclegan_text2video", "denoiser", download=False)


def test_user_file_adds_a_mirror_a_local_file_and_a_new_entry(server, weights_bytes, tmp_path, monkeypatch):
    server.files["/mine/ViT-B-32-openai.safetensors"] = weights_bytes
    local = tmp_path / "my_netG.pth"
    torch.save({"w": torch.zeros(300_000)}, local)
    user = _user_file(tmp_path, monkeypatch, f"""
        models:
        - name: ViT-B-32/openai
          files:
          - name: ViT-B-32-openai.safetensors
            urls: [{server.url}/mine/ViT-B-32-openai.safetensors]
            min_size: 1000
        - name: cyclegan_text2video
          files:
          - {{name: cyclegan_text2video_netG_A.pth, path: {local}}}
        - name: my_metric
          kind: metric
          good_for: my own metric network
          files:
          - {{name: m.safetensors, check: weights, urls: [{server.url}/mine/ViT-B-32-openai.safetensors]}}
    """)
    clip = registry.get_model_info("ViT-B-32/openai", "clip")
    import yaml

    packaged = yaml.safe_load((registry.packaged_registry_dir() / "clip.yaml").read_text())["models"][0]
    assert packaged["name"] == "ViT-B-32/openai"
    assert clip.files[0].urls == (f"{server.url}/mine/ViT-B-32-openai.safetensors", *packaged["files"][0]["urls"])  # the user's first
    got = resolve_model("ViT-B-32/openai", "clip")
    assert got.found == "downloaded" and got.path.read_bytes() == weights_bytes and got.options["quick_gelu"] is True
    assert resolve_model("ViT-B-32/openai", "clip").found == "cache"
    den = resolve_model("cyclegan_text2video", "denoiser", download=False)
    assert den.path == local and den.found == "user-file" and model_status("cyclegan_text2video") == "local"
    assert "my_metric" in registry.list_models("metric") and resolve_model("my_metric", "metric").path.is_file()
    assert str(user) in format_model_table()
    user.write_text("models:\n- name: imagenet_f16_16384\n  arch: {n_embed: 3}\n")
    with pytest.raises(ConfigError, match="a user file may change only its files"):
        registry.list_models()


def test_resolve_model_rejects_a_wrong_kind_and_bad_specs_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="'cyclegan_text2video' is a denoiser, not a vqgan"):
        resolve_model("cyclegan_text2video", "vqgan")
    with pytest.raises(ConfigError, match="model kind 'lora' is not allowed"):
        resolve_model("x", "lora")
    with pytest.raises(ConfigError, match=r"diffusion model 'sd15' is not usable; allowed: a registry name .* or \{path: local folder\}"):
        resolve_model("sd15", "diffusion")
    got = resolve_model({"path": str(tmp_path)}, "diffusion")
    assert got.paths == (tmp_path,) and got.folder == tmp_path and got.found == "local" and got.entry is None


def test_every_packaged_entry_follows_the_schema():
    infos = registry.all_models()
    assert {i.kind for i in infos} == {"vqgan", "clip", "denoiser", "diffusion", "motion_adapter", "metric"}
    clip = [i.name for i in infos if i.kind == "clip"]
    assert {"ViT-B-32/openai", "ViT-B-16/openai", "RN50/openai", "ViT-L-14/openai", "toy"} <= set(clip)
    assert any("laion" in n for n in clip)
    for info in infos:
        assert info.licence and info.good_for, info.name
        assert info.packaged or all(f.urls for f in info.files), info.name
        if info.kind == "clip" and not info.packaged:
            assert info.arch["quick_gelu"] is (info.arch["pretrained"] == "openai"), info.name


def test_a_process_waiting_for_another_ones_download_reports_its_progress(server, weights_bytes, tmp_path):
    from filelock import FileLock

    remote = _remote(server, ["ok"], weights_bytes)
    dest = tmp_path / "clip" / remote.filename
    (dest.parent / ".locks").mkdir(parents=True)
    other = FileLock(str(dest.parent / ".locks" / (dest.name + ".lock")))  # "another process" holds the file
    other.acquire()
    dest.with_name(dest.name + ".part").write_bytes(weights_bytes[:1000])
    events, result = [], []
    worker = threading.Thread(target=lambda: result.append(fetch_file(remote, dest, callback=events.append, model="m")))
    worker.start()
    deadline = time.monotonic() + 10
    while not any(e["bytes"] == 1000 for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(e["bytes"] == 1000 and e["total"] == len(weights_bytes) for e in events)
    dest.write_bytes(weights_bytes)  # the other process finishes: renames its verified file into place
    dest.with_name(dest.name + ".part").unlink()
    other.release()
    worker.join(10)
    assert result == [dest] and server.requests == []  # found it done; downloaded nothing itself
