"""`vqclip doctor`: the table, what it says to do, and that no network never fails it."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

import pytest

from vqclip.preproduction import doctor
from vqclip.preproduction.doctor import FAIL, PASS, SKIP, WARN, CheckResult


def _offline(url: str, timeout: float) -> str:
    return "Temporary failure in name resolution"


@pytest.fixture
def no_network(monkeypatch):
    """Every host probe fails as it does on a machine with no network."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_probe_host_reports_the_reason_when_offline(no_network):
    assert "name resolution" in doctor.probe_host("https://huggingface.co/", timeout=0.1)


def test_probe_host_counts_an_http_error_as_an_answer(monkeypatch):
    def forbidden(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 403, "Forbidden", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    assert doctor.probe_host("https://huggingface.co/", timeout=0.1) is None


def test_unreachable_hosts_are_a_warning_with_advice(no_network):
    result = doctor.check_hosts(["https://huggingface.co/", "https://github.com/"], timeout=0.1)
    assert result.status == WARN
    assert "0/2 answer" in result.detail and "huggingface.co" in result.detail and "github.com" in result.detail
    assert "offline" in result.fix and "toy pack" in result.fix


def test_some_hosts_down_is_a_milder_warning():
    result = doctor.check_hosts(["https://a.example/", "https://b.example/"], timeout=0.1,
                                probe=lambda url, t: None if "a." in url else "timed out")
    assert result.status == WARN and "1/2 answer" in result.detail and "b.example" in result.detail
    assert "next mirror" in result.fix


def test_a_hanging_host_does_not_hold_the_doctor_up():
    def hang(url: str, timeout: float) -> None:
        time.sleep(3)

    start = time.time()
    result = doctor.check_hosts(["https://slow.example/"], timeout=0.1, probe=hang)
    assert time.time() - start < 2.0
    assert result.status == WARN and "slow.example" in result.detail


def test_model_hosts_include_registry_mirrors_and_clip_hosts():
    hosts = doctor.model_hosts()
    assert "https://huggingface.co/" in hosts and "https://openaipublic.azureedge.net/" in hosts
    assert len(hosts) == len(set(hosts))
    assert all(h.startswith(("http://", "https://")) and h.endswith("/") for h in hosts)


def test_cache_dir_that_cannot_be_made_fails_with_the_setting_to_change(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = doctor.check_cache_dir(blocker / "cache")
    assert result.status == FAIL and str(blocker / "cache") in result.detail
    assert "VQCLIP_CACHE" in result.fix


def test_cache_dir_follows_vqclip_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VQCLIP_CACHE", str(tmp_path / "models"))
    result = doctor.check_cache_dir()
    assert result.status == PASS and str(tmp_path / "models") in result.detail
    assert list((tmp_path / "models").iterdir()) == []  # the probe file is gone


def test_missing_and_old_packages_fail_with_the_pip_command(monkeypatch):
    monkeypatch.setattr(doctor, "REQUIRED_PACKAGES", {"not-a-real-dist-xyz": ("xyz", None), "moviepy": ("moviepy", "2.2.1")})
    monkeypatch.setattr(doctor, "OPTIONAL_PACKAGES", {})
    real_version = doctor.metadata.version
    monkeypatch.setattr(doctor.metadata, "version", lambda d: "1.0.3" if d == "moviepy" else real_version(d))
    missing, old = doctor.check_packages()
    assert missing.status == FAIL and missing.detail == "not installed" and "pip install" in missing.fix
    assert old.status == FAIL and "1.0.3 (needs >= 2.2.1)" in old.detail and "moviepy>=2.2.1" in old.fix


def test_version_comparison():
    assert doctor._at_least("2.15.0+cu132", "2.1")
    assert doctor._at_least("2.2.1", "2.2.1") and not doctor._at_least("1.0.3", "2.2.1")
    assert doctor._at_least("3.3.0", "2.20") and not doctor._at_least("2.9.1", "2.20")
    assert doctor._at_least("2.0.0rc1", "2.0")


def test_no_gpu_is_a_warning_not_a_failure(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = doctor.check_gpu()
    assert result.status == WARN and "CPU" in result.detail and "GPU" in result.fix


def test_ffmpeg_is_found():
    result = doctor.check_ffmpeg()
    assert result.status == PASS and "ffmpeg" in result.detail


def test_render_is_skipped_only_when_the_engine_is_not_importable(monkeypatch):
    monkeypatch.setitem(sys.modules, "vqclip.production.render", None)  # makes `import vqclip.production.render` raise ImportError
    result = doctor.check_toy_render()
    assert result.status == SKIP and result.detail.startswith("skipped: engine not installed")


def test_report_has_a_row_per_check_and_a_todo_list():
    results = [
        CheckResult("python", PASS, "3.11"),
        CheckResult("cuda gpu", WARN, "none", "use a GPU"),
        CheckResult("ffmpeg", FAIL, "missing", "reinstall imageio-ffmpeg"),
        CheckResult("toy render", SKIP, "skipped (--no-render)"),
    ]
    text = doctor.format_report(results)
    lines = text.splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert any(line.split()[:2] == ["ffmpeg", "FAIL"] for line in lines)
    assert "1. [WARN] cuda gpu: use a GPU" in text and "2. [FAIL] ffmpeg: reinstall imageio-ffmpeg" in text
    assert text.rstrip().endswith("1 failed, 1 warning (fix the FAIL rows first)")


def test_doctor_offline_without_render_exits_0_and_prints_the_table(no_network, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "check_toy_pack", lambda: CheckResult("toy model pack", PASS, "stub"))
    from vqclip.cli import main

    assert main(["doctor", "--no-render"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "package torch", "torch", "cuda gpu", "ffmpeg", "cache dir", "model hosts", "toy render"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "model hosts" in out and "WARN" in out and "skipped (--no-render)" in out


def test_doctor_exit_code_is_1_when_a_check_fails(no_network, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_ffmpeg", lambda: CheckResult("ffmpeg", FAIL, "gone", "reinstall imageio-ffmpeg"))
    assert doctor.run_doctor(skip_render=True) == 1
    assert "[FAIL] ffmpeg: reinstall imageio-ffmpeg" in capsys.readouterr().out


def test_toy_render_runs_through_the_real_render_loop():
    result = doctor.check_toy_render()
    assert result.status == PASS, result
    assert result.detail.startswith("2 frames + video in ")


def test_models_row_reports_the_registry_cache_state(tmp_path, monkeypatch):
    from vqclip.models.registry import model_status

    monkeypatch.setenv("VQCLIP_CACHE", str(tmp_path))
    row = doctor.check_models()
    assert row.status == "PASS" and "clip:toy" in row.detail and "vqgan:toy" in row.detail
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "ViT-B-32-openai.safetensors").write_bytes(b"<html>quota exceeded</html>")
    row = doctor.check_models()
    assert row.status == "WARN" and "clip:ViT-B-32/openai" in row.detail and model_status("ViT-B-32/openai") == "invalid"
