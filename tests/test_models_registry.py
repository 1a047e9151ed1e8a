"""Registry and downloads: every path runs against a local HTTP server on 127.0.0.1, never the network."""

from __future__ import annotations

import hashlib
import re
import socket
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import local_http_server
from vqclip.errors import ConfigError, DownloadError, ModelError
from vqclip.models import registry
from vqclip.models.registry import (
    ModelInfo,
    RemoteFile,
    default_cache_dir,
    download_model,
    format_model_table,
    get_model_info,
    list_models,
    resolve_vqgan,
)
from vqclip.models.vqgan import load_vqgan

PUBLISHED = ["imagenet_f16_1024", "imagenet_f16_16384", "gumbel_8192", "coco", "faceshq", "wikiart_1024",
             "wikiart_16384", "sflckr", "ade20k", "ffhq", "celebahq"]


class _Handler(BaseHTTPRequestHandler):
    """Serves server.files[path] with Range support; behaviours by path prefix."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        if self.path.startswith("/dead/") or self.path not in server.files:
            self.send_error(404)
            return
        body = server.files[self.path]
        start = 0
        if rng and not self.path.startswith("/norange/"):
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if self.path.startswith("/truncate/") and self.path not in server.truncated:
            server.truncated.add(self.path)
            payload = payload[: len(payload) // 2]  # announce it all, send half, hang up
            self.close_connection = True
        self.wfile.write(payload)


@pytest.fixture
def http_server():
    with local_http_server(_Handler, files={}, requests=[], truncated=set()) as server:
        yield server


@pytest.fixture
def dead_url():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _info(server, prefixes_yaml, prefixes_ckpt, files, sha=True, exact_size=False):
    config, ckpt = files
    yaml_bytes, ckpt_bytes = config.read_bytes(), ckpt.read_bytes()
    for prefix in {*prefixes_yaml, *prefixes_ckpt}:
        server.files[f"/{prefix}/m.yaml"] = yaml_bytes
        server.files[f"/{prefix}/m.ckpt"] = ckpt_bytes
    server.files["/corrupt/m.ckpt"] = ckpt_bytes[:-100] + bytes(100)
    server.files["/corrupt/m.yaml"] = b"<html><body>Quota exceeded</body></html>"
    return ModelInfo(
        "tiny", "vqgan",
        (
            RemoteFile("tiny.yaml", tuple(f"{u if u.startswith('http') else server.url + '/' + u}/m.yaml" for u in prefixes_yaml), check="yaml"),
            RemoteFile("tiny.ckpt", tuple(f"{u if u.startswith('http') else server.url + '/' + u}/m.ckpt" for u in prefixes_ckpt),
                       size=len(ckpt_bytes) if exact_size else None,
                       sha256=hashlib.sha256(ckpt_bytes).hexdigest() if sha else None, check="ckpt"),
        ),
        "tests", "test fixture", arch=None,
    )


def test_good_file_downloads_verifies_and_loads(http_server, taming_checkpoints, tmp_path):
    config, ckpt, source = taming_checkpoints["vq"]
    info = _info(http_server, ["good"], ["good"], (config, ckpt), exact_size=True)
    got_config, got_ckpt = download_model(info, cache_dir=tmp_path)
    assert got_config == tmp_path / "vqgan" / "tiny.yaml" and got_ckpt == tmp_path / "vqgan" / "tiny.ckpt"
    assert got_ckpt.read_bytes() == ckpt.read_bytes()
    assert not list((tmp_path / "vqgan").glob("*.part"))
    assert (tmp_path / "vqgan" / "tiny.ckpt.sha256").read_text().split()[-1] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert load_vqgan(got_config, got_ckpt).codebook.equal(source.codebook)


def test_corrupt_file_falls_through_to_next_mirror(http_server, taming_checkpoints, tmp_path):
    info = _info(http_server, ["corrupt", "good"], ["corrupt", "good"], taming_checkpoints["vq"][:2])
    _, ckpt = download_model(info, cache_dir=tmp_path)
    assert ckpt.read_bytes() == taming_checkpoints["vq"][1].read_bytes()
    paths = [p for p, _ in http_server.requests]
    assert paths == ["/corrupt/m.yaml", "/good/m.yaml", "/corrupt/m.ckpt", "/good/m.ckpt"]


def test_corrupt_file_without_hash_is_caught_by_the_load_check(http_server, taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["vq"]
    http_server.files["/broken/m.ckpt"] = ckpt.read_bytes()[: len(ckpt.read_bytes()) // 3]
    info = _info(http_server, ["good"], ["broken", "good"], (config, ckpt), sha=False)
    download_model(info, cache_dir=tmp_path)
    assert (tmp_path / "vqgan" / "tiny.ckpt").read_bytes() == ckpt.read_bytes()


def test_truncated_download_is_resumed_with_range(http_server, taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["vq"]
    info = _info(http_server, ["truncate"], ["truncate"], (config, ckpt))
    download_model(info, cache_dir=tmp_path)
    assert (tmp_path / "vqgan" / "tiny.ckpt").read_bytes() == ckpt.read_bytes()
    ckpt_requests = [r for r in http_server.requests if r[0].endswith(".ckpt")]
    half = len(ckpt.read_bytes()) // 2
    assert ckpt_requests == [("/truncate/m.ckpt", None), ("/truncate/m.ckpt", f"bytes={half}-")]


def test_part_file_from_an_earlier_run_is_resumed(http_server, taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["vq"]
    info = _info(http_server, ["good"], ["good"], (config, ckpt))
    folder = tmp_path / "vqgan"
    folder.mkdir()
    (folder / "tiny.ckpt.part").write_bytes(ckpt.read_bytes()[:1000])
    download_model(info, cache_dir=tmp_path)
    assert ("/good/m.ckpt", "bytes=1000-") in http_server.requests
    assert (folder / "tiny.ckpt").read_bytes() == ckpt.read_bytes()


def test_server_ignoring_range_restarts_cleanly(http_server, taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["vq"]
    info = _info(http_server, ["norange"], ["norange"], (config, ckpt))
    folder = tmp_path / "vqgan"
    folder.mkdir()
    (folder / "tiny.ckpt.part").write_bytes(b"x" * 1000)
    download_model(info, cache_dir=tmp_path)
    assert (folder / "tiny.ckpt").read_bytes() == ckpt.read_bytes()


def test_cached_files_are_not_downloaded_again(http_server, taming_checkpoints, tmp_path):
    info = _info(http_server, ["good"], ["good"], taming_checkpoints["vq"][:2])
    download_model(info, cache_dir=tmp_path)
    count = len(http_server.requests)
    download_model(info, cache_dir=tmp_path)
    assert len(http_server.requests) == count
    # a cached file that no longer matches its hash is fetched again
    (tmp_path / "vqgan" / "tiny.ckpt").write_bytes(b"tampered")
    download_model(info, cache_dir=tmp_path)
    assert len(http_server.requests) == count + 1


def test_every_mirror_dead_gives_one_clear_error(http_server, dead_url, taming_checkpoints, tmp_path):
    info = _info(http_server, ["dead", dead_url], ["dead", dead_url], taming_checkpoints["vq"][:2])
    with pytest.raises(DownloadError) as err:
        download_model(info, cache_dir=tmp_path)
    msg = str(err.value)
    folder = tmp_path / "vqgan"
    assert msg.startswith("could not download model 'tiny': every mirror failed (")
    assert "tiny.yaml" in msg and "tiny.ckpt" in msg and "HTTP 404" in msg and "unreachable" in msg
    assert f"download them by hand and put them in {folder} as tiny.yaml and tiny.ckpt" in msg
    assert not list(folder.glob("tiny.*"))


def test_size_mismatch_is_refused(http_server, taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["vq"]
    info = _info(http_server, ["good"], ["good"], (config, ckpt), sha=False, exact_size=True)
    http_server.files["/good/m.ckpt"] = ckpt.read_bytes() + b"extra"
    with pytest.raises(DownloadError, match=r"got \d+ bytes, expected \d+"):
        download_model(info, cache_dir=tmp_path)


def test_registry_holds_the_eleven_published_models_and_toy():
    assert list_models("vqgan") == [*sorted(PUBLISHED, key=list_models().index), "toy"]
    assert set(list_models("vqgan")) == {*PUBLISHED, "toy"}
    for name in PUBLISHED:
        info = get_model_info(name)
        assert info.kind == "vqgan" and info.good_for and info.source
        assert [f.filename for f in info.files] == [f"{name}.yaml", f"{name}.ckpt"]
        assert all(f.urls for f in info.files), name
        assert all(f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in info.files)
        arch = info.architecture
        assert arch["ddconfig"]["ch"] == 128 and arch["embed_dim"] == 256
    assert get_model_info("gumbel_8192").architecture["kind"] == "gumbel"
    assert get_model_info("imagenet_f16_16384").files[1].size == 980_092_370
    with pytest.raises(ModelError, match="model 'vqgan_imagenet' is not in the registry; allowed: .*imagenet_f16_16384"):
        get_model_info("vqgan_imagenet")


def test_cache_dir_default_env_and_argument(monkeypatch, tmp_path):
    monkeypatch.delenv("VQCLIP_CACHE", raising=False)
    assert str(default_cache_dir()).endswith(".cache/vqclip")
    monkeypatch.setenv("VQCLIP_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert registry.model_dir("coco") == tmp_path / "env" / "vqgan"
    assert registry.model_dir("coco", tmp_path / "arg") == tmp_path / "arg" / "vqgan"


def test_model_table_lists_models_and_what_is_downloaded(tmp_path):
    folder = tmp_path / "vqgan"
    folder.mkdir()
    (folder / "coco.yaml").write_text("model: {}\n")
    (folder / "coco.ckpt").write_bytes(b"0")
    (folder / "wikiart_1024.ckpt.part").write_bytes(b"0")
    table = format_model_table(cache_dir=tmp_path)
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line and line.split()[0] in list_models()}
    assert set(rows) == set(list_models())
    # coco.ckpt has a published sha256 that one byte cannot match: present but never used
    assert rows["coco"].endswith(" invalid") and rows["wikiart_1024"].endswith(" partial") and rows["sflckr"].endswith(" no")
    assert "980 MB" in rows["imagenet_f16_16384"] and "~296 MB" in rows["coco"]
    assert f"cache: {tmp_path}" in table


def test_resolve_without_download_says_how_to_get_the_files(tmp_path):
    with pytest.raises(ModelError, match=r"model 'coco' is not downloaded; run `vqclip models download coco`, or download them by hand and put them in "):
        resolve_vqgan("coco", cache_dir=tmp_path, download=False)


def test_resolve_local_files(taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["gumbel"]
    assert resolve_vqgan({"config": str(config), "checkpoint": ckpt}) == (config, ckpt)
    with pytest.raises(ModelError, match="VQGAN checkpoint file .* does not exist"):
        resolve_vqgan({"config": config, "checkpoint": tmp_path / "missing.ckpt"})
    with pytest.raises(ConfigError, match="allowed: a registry name or"):
        resolve_vqgan({"config": config, "ckpt": ckpt})


def test_toy_resolves_to_packaged_files_or_says_what_is_missing(monkeypatch, taming_checkpoints, tmp_path):
    monkeypatch.setattr(registry, "packaged_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match="ships inside vqclip, but .*toy_vqgan.yaml and .*toy_vqgan.ckpt are missing; rebuild the toy pack"):
        resolve_vqgan("toy")
    config, ckpt, _ = taming_checkpoints["vq"]
    (tmp_path / "toy_vqgan.yaml").write_bytes(config.read_bytes())
    (tmp_path / "toy_vqgan.ckpt").write_bytes(ckpt.read_bytes())
    assert resolve_vqgan("toy") == (tmp_path / "toy_vqgan.yaml", tmp_path / "toy_vqgan.ckpt")
    assert download_model("toy") == (tmp_path / "toy_vqgan.yaml", tmp_path / "toy_vqgan.ckpt")
    (toy_row,) = [line for line in format_model_table(cache_dir=tmp_path).splitlines() if line.split()[:2] == ["toy", "vqgan"]]
    assert toy_row.endswith(" packaged")
