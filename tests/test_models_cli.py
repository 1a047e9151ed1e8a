"""`vqclip models`: the table lists every family with sizes and cache state; download draws bars from events."""

from __future__ import annotations

from vqclip import cli
from vqclip.models import registry


def test_models_list_shows_the_clip_perceptors_with_sizes_and_state(capsys, tmp_path):
    assert cli.main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if line and not line.startswith(("-", "name"))}
    for name in ("ViT-B-32/openai", "ViT-B-16/openai", "RN50/openai", "ViT-L-14/openai"):
        assert "~" in rows[name, "clip"] and rows[name, "clip"].endswith(" no")
    assert rows["toy", "clip"].endswith(" packaged") and rows["toy", "vqgan"].endswith(" packaged")
    assert rows["cyclegan_text2video", "denoiser"].endswith(" no")


def test_models_download_draws_a_bar_from_the_download_events(monkeypatch, capsys, tmp_path):
    seen = []

    def fake_download(name, cache_dir=None, callback=None):
        for done in (0, 500, 1000):
            callback({"event": "download", "name": name, "file": "w.bin", "bytes": done, "total": 1000})
            seen.append(done)
        return (tmp_path / "w.bin",)

    monkeypatch.setattr(registry, "download_model", fake_download)
    bars = []
    real = cli.DownloadBars.__call__

    def spy(self, event):
        real(self, event)
        bars.append({k: (b.n, b.total) for k, b in self.bars.items()})

    monkeypatch.setattr(cli.DownloadBars, "__call__", spy)
    assert cli.main(["models", "download", "toy", "--cache-dir", str(tmp_path)]) == 0
    assert seen == [0, 500, 1000]
    assert bars[:2] == [{"w.bin": (0, 1000)}, {"w.bin": (500, 1000)}] and bars[2] == {}  # closed when complete
    assert f"toy: {tmp_path / 'w.bin'}" in capsys.readouterr().out


def test_models_download_of_an_unknown_name_is_one_line(capsys):
    assert cli.main(["models", "download", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqclip: error: model 'nope' is not in the registry; allowed: imagenet_f16_16384") and "\n" not in err
