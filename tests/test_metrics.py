"""vqclip.metrics: Fréchet distance, FVD, Inception Score, the feature-extractor download path, the plot.

No network: feature extractors are tiny stand-ins (a TorchScript I3D written here, the 2015 Inception
architecture with random weights) served by a mocked server through the real download code.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from vqclip.errors import ConfigError, DownloadError, ModelError
from vqclip.metrics import extractors
from vqclip.metrics.frechet import feature_stats, frechet_distance, frechet_distance_of
from vqclip.metrics.inception import inception_score
from vqclip.metrics.run import EvalReport, fvd_between
from vqclip.metrics.video import EvalVideo, load_video
from vqclip.models import download


# --- Fréchet distance ------------------------------------------------------------------------------


def _independent_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """d² via the symmetric form Tr sqrt(S1^½ S2 S1^½), eigen-decompositions only (no sqrtm of S1 S2)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = scipy.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = scipy.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_distance_agrees_with_an_independent_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12))
    b = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) * 0.7 + 0.3
    ours, theirs = frechet_distance_of(a, b), _independent_frechet(a, b)
    assert theirs > 1.0
    assert abs(ours - theirs) / theirs < 1e-6


def test_frechet_distance_of_one_dimensional_gaussians_is_closed_form():
    # (mu1-mu2)² + (s1-s2)² for variances s1², s2²
    assert frechet_distance([1.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)


def test_fvd_of_a_set_with_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(400, 16))
    assert frechet_distance_of(feats, feats) < 1e-8
    values = [frechet_distance_of(feats, feats + rng.normal(scale=s, size=feats.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] > 0 and values[-1] > 10 * values[0]


def test_feature_stats_need_two_samples():
    with pytest.raises(ConfigError, match="N >= 2"):
        feature_stats(np.zeros((1, 4)))


# --- Inception Score -------------------------------------------------------------------------------


def test_inception_score_of_a_uniform_classifier_is_one():
    mean, std = inception_score(np.full((50, 10), 0.1))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == 0.0


@pytest.mark.parametrize("classes", [2, 7, 1008])
def test_inception_score_of_confident_distinct_classes_is_the_class_count(classes):
    probs = np.eye(classes)  # one sample per class, each certain
    assert inception_score(probs)[0] == pytest.approx(classes, rel=1e-9)


def test_inception_score_of_one_repeated_class_is_one_and_splits_are_checked():
    probs = np.tile(np.eye(5)[2], (20, 1))
    assert inception_score(probs, splits=4)[0] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="splits=30"):
        inception_score(probs, splits=30)


# --- stand-in extractors served by a mocked server -------------------------------------------------


class _Response(io.BytesIO):
    status = 200

    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def server(monkeypatch):
    """Serves {url: bytes} through vqclip.models.download; records the URLs asked for."""
    files: dict[str, bytes] = {}
    asked: list[str] = []

    def fake_open(url, start, *timeout):
        asked.append(url)
        if url not in files:
            import urllib.error

            raise urllib.error.HTTPError(url, 404, "not found", {}, None)
        return _Response(files[url][start:])

    monkeypatch.setattr(download, "_open", fake_open)
    return files, asked


class _TinyI3D(torch.nn.Module):
    """I3D's calling convention (StyleGAN-V's TorchScript) with a tiny random 3D conv net: 8 features."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 8, kernel_size=(3, 4, 4), stride=(2, 4, 4))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1
        if resize:
            n, c, t, h, w = x.shape
            x = torch.nn.functional.interpolate(x, size=(t, 32, 32), mode="trilinear", align_corners=False)
        feats = self.conv(x).mean(dim=(2, 3, 4))
        return feats if return_features else torch.softmax(feats, dim=1)


@pytest.fixture(scope="module")
def i3d_bytes():
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_TinyI3D()), buf)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_registry_lists_the_extractors_with_their_published_hashes():
    entries = extractors.metric_entries()
    inc = entries["inception_2015"]
    assert inc.format == "state_dict" and inc.file.size == 95_628_359
    assert inc.file.sha256 == "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
    assert entries["i3d_kinetics400"].format == "torchscript" and entries["i3d_kinetics400"].file.sha256 is None
    assert all(e.file.urls and e.licence for e in entries.values())


def test_unpinned_torchscript_is_never_downloaded(server, tmp_path):
    _, asked = server
    with pytest.raises(ModelError, match="TorchScript file is code"):
        extractors.load_i3d(cache_dir=tmp_path)
    assert asked == []


def test_pinned_i3d_downloads_verifies_and_gives_fvd(server, tmp_path, i3d_bytes):
    files, asked = server
    url = extractors.metric_entry("i3d_kinetics400").file.urls[0]
    files[url] = i3d_bytes
    events = []
    detector = extractors.load_i3d(sha256=_sha(i3d_bytes), cache_dir=tmp_path, callback=events.append)
    assert asked == [url] and (tmp_path / "metric" / "i3d_torchscript.pt").is_file()
    assert events[-1]["event"] == "download" and events[-1]["bytes"] == len(i3d_bytes)
    # a second load is a cache hit
    extractors.load_i3d(sha256=_sha(i3d_bytes), cache_dir=tmp_path)
    assert asked == [url]

    rng = np.random.default_rng(0)
    def video(seed_shift: float, n: int = 20) -> EvalVideo:
        frames = np.clip(rng.normal(128 + seed_shift, 40, size=(n, 24, 24, 3)), 0, 255).astype(np.uint8)
        return EvalVideo(tmp_path, frames, [[] for _ in range(n)])
    same = [video(0) for _ in range(3)]
    result_self = fvd_between(same, same, detector)
    result_far = fvd_between(same, [video(90) for _ in range(3)], detector)
    assert result_self.fvd < 1e-6 and result_far.fvd > 1e-3
    assert (result_far.clips_a, result_far.videos_a) == (3, 3)  # one 16-frame clip per 20-frame video
    assert "rank-deficient" in result_far.note
    with pytest.raises(ConfigError, match="at least 2 videos per side"):
        fvd_between(same[:1], same, detector)


def test_corrupt_download_is_refused_and_a_local_file_needs_its_hash(server, tmp_path, i3d_bytes):
    files, _ = server
    url = extractors.metric_entry("i3d_kinetics400").file.urls[0]
    files[url] = i3d_bytes[:-10] + b"x" * 10
    with pytest.raises(DownloadError, match="sha256"):
        extractors.load_i3d(sha256=_sha(i3d_bytes), cache_dir=tmp_path)
    assert not (tmp_path / "metric" / "i3d_torchscript.pt").exists()

    local = tmp_path / "mine.pt"
    local.write_bytes(i3d_bytes)
    with pytest.raises(ModelError, match=_sha(i3d_bytes)):  # tells the user the hash to confirm
        extractors.load_i3d(path=local)
    out = extractors.load_i3d(path=local, sha256=_sha(i3d_bytes))(torch.zeros(1, 3, 4, 8, 8), return_features=True)
    assert out.shape == (1, 8)
    with pytest.raises(ModelError, match="not the expected"):
        extractors.load_i3d(path=local, sha256="0" * 64)


def test_inception_2015_stand_in_downloads_loads_and_scores(server, tmp_path, monkeypatch):
    from vqclip.metrics.inception import build_inception_2015

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(build_inception_2015().state_dict(), buf)
    data = buf.getvalue()
    real = extractors.metric_entry("inception_2015")
    # the stand-in replaces the published file: same entry, its own size and hash
    stand_in = dataclasses.replace(real, file=dataclasses.replace(real.file, size=len(data), sha256=_sha(data)))
    monkeypatch.setattr(extractors, "metric_entries", lambda: {"inception_2015": stand_in})
    files, asked = server
    files[real.file.urls[1]] = data  # the first mirror is down: the second one serves it
    classifier = extractors.load_inception(cache_dir=tmp_path)
    assert asked == list(real.file.urls)
    probs = classifier(torch.rand(2, 3, 64, 80))
    assert probs.shape == (2, 1008) and torch.allclose(probs.sum(1), torch.ones(2, dtype=probs.dtype), atol=1e-5)
    mean, _ = inception_score(probs.double().numpy())
    assert 1.0 <= mean <= 2.0


def test_a_state_dict_of_another_network_is_a_model_error(tmp_path, monkeypatch):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelError, match="does not fit the 2015 Inception"):
        extractors.load_inception(path=path, sha256=_sha(path.read_bytes()))


# --- reading runs and plotting ---------------------------------------------------------------------


def _write_frames(folder, n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png")


def test_run_folder_prompts_come_from_the_timeline(tmp_path):
    run = tmp_path / "run"
    _write_frames(run / "frames", 6)
    (run / "settings.yaml").write_text(
        "prompts:\n  texts: 'watercolor'\n  scenes:\n"
        "    - {texts: 'a red circle', frames: 4}\n    - {texts: 'a blue square:2', frames: 2}\n"
        "models: {vqgan: toy, clip: [{spec: toy}]}\nanimation: {frames: 6}\n"
    )
    video = load_video(run)
    assert video.frames.shape == (6, 16, 16, 3) and video.scene_starts == [4] and video.guides == ["toy"]
    assert video.prompts[0] == [("watercolor", 1.0), ("a red circle", 1.0)]
    assert video.prompts[2] == [("watercolor", 1.0), ("a red circle", 0.5), ("a blue square", 1.0)]  # blend x own weight 2
    assert load_video(run, prompt="a cat").prompts[5] == [("a cat", 1.0)]


def test_a_folder_without_frames_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="holds no frames"):
        load_video(tmp_path)


def test_plot_draws_both_curves_and_marks_the_scene_start(tmp_path):
    from vqclip.metrics import plot

    report = EvalReport("x", 11, "toy", False, 50.0, 0.9, 3.0, clip_score_per_frame=[40.0 + i for i in range(11)],
                        consistency_per_pair=[0.9 + 0.005 * (i % 2) for i in range(10)], scene_starts=[5])
    path = plot.plot_report(report, tmp_path / "p.png")
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    has = lambda colour: (np.abs(img - np.array(colour)).sum(axis=2) < 30).sum()
    assert has(plot._SCORE) > 200 and has(plot._CONS) > 200
    x = round(plot._LEFT + 5 / 10 * (plot._W - plot._RIGHT - plot._LEFT))
    column = img[plot._TOP:plot._TOP + plot._PANEL_H, x]
    assert (np.abs(column - np.array(plot._SCENE)).sum(axis=1) < 30).sum() > plot._PANEL_H // 3  # the dashed line


def test_eval_cli_on_a_frame_folder_writes_json_and_plot(tmp_path, capsys):
    from vqclip.cli import main

    _write_frames(tmp_path / "clip", 3, size=40)
    assert main(["eval", str(tmp_path / "clip"), "--clip", "toy", "--prompt", "a red circle on a blue background"]) == 0
    data = json.loads((tmp_path / "clip" / "eval.json").read_text())
    assert data["frames"] == 3 and len(data["clip_score_per_frame"]) == 3 and len(data["consistency_per_pair"]) == 2
    assert 0 <= data["clip_score"] <= 100 and data["judge_guided"] is False
    assert Image.open(tmp_path / "clip" / "eval.png").size[0] > 0
    assert "CLIP score" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "clip"), "--clip", "toy", "--i3d-sha256", "nothex"]) == 2


def test_prompts_fall_back_to_the_png_chunks_when_settings_do_not_load(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    run = tmp_path / "run"
    (run / "frames").mkdir(parents=True)
    for i, text in enumerate(["a red circle", "a red circle (x0.50) | a blue square:2 (x0.50) | Words:-1"]):
        info = PngInfo()
        info.add_itxt("prompt", text)
        info.add_itxt("model", "vqgan:toy, clip:toy")
        Image.new("RGB", (8, 8)).save(run / "frames" / f"{i:06d}.png", pnginfo=info)
    (run / "settings.yaml").write_text("generation: {not_a_key_any_version_has: 1}\n")
    video = load_video(run)
    assert video.prompts == [[("a red circle", 1.0)], [("a red circle", 0.5), ("a blue square", 1.0)]]
    assert video.guides == ["toy"]


class _TinyC3D(torch.nn.Module):
    """C3D's calling convention in StyleGAN-V's video IS: uint8 (N,3,T,H,W) in, (N, 5) probabilities out."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_colour = x.float().mean(dim=(2, 3, 4)) / 255
        return torch.softmax(self.fc(mean_colour) * 50, dim=1)


def test_video_inception_score_uses_the_pinned_c3d_over_16_frame_clips(tmp_path):
    from vqclip.metrics.run import evaluate_runs

    torch.manual_seed(0)
    c3d = tmp_path / "c3d.pt"
    torch.jit.save(torch.jit.script(_TinyC3D()), str(c3d))
    frames = tmp_path / "frames"
    _write_frames(frames, 33, size=12)  # two full 16-frame clips (the 33rd frame is left out)
    with pytest.raises(ModelError, match="c3d-sha256"):
        evaluate_runs([frames], clip="toy", c3d=c3d, write=False)
    (report,) = evaluate_runs([frames], clip="toy", c3d=c3d, c3d_sha256=_sha(c3d.read_bytes()), write=False)
    assert 1.0 <= report.video_inception_score <= 2.0 + 1e-9  # two clips: at most 2 classes
    assert any("2 clip(s)" in n for n in report.notes)


def test_a_video_file_is_read_and_its_report_goes_beside_it(tmp_path):
    from vqclip.metrics.run import evaluate_runs
    from vqclip.video import write_video

    frames = [np.full((32, 48, 3), (20 * i, 0, 200), dtype=np.uint8) for i in range(6)]
    path = write_video(frames, tmp_path / "clip.mp4", fps=6, quality="lossless")
    (report,) = evaluate_runs([path], clip="toy", prompt="a red circle on a blue background")
    assert report.frames == 6 and len(report.flicker_per_pair) == 5
    assert 5 < report.flicker < 8.5  # red steps by 20 levels a frame in one channel of three: ~6.7 after yuv420p
    assert report.json_path == tmp_path / "clip.eval.json" and report.plot_path == tmp_path / "clip.eval.png"


def test_fvd_of_runs_against_a_reference_folder_through_the_cli(tmp_path, i3d_bytes, capsys):
    from vqclip.cli import main

    i3d = tmp_path / "i3d.pt"
    i3d.write_bytes(i3d_bytes)
    for name, seed in (("run_a", 1), ("run_b", 2), ("ref/one", 3), ("ref/two", 4)):
        _write_frames(tmp_path / name, 16, size=24, seed=seed)
    args = ["eval", str(tmp_path / "run_a"), str(tmp_path / "run_b"), "--clip", "toy", "--prompt", "a red circle",
            "--reference", str(tmp_path / "ref"), "--i3d", str(i3d)]
    assert main(args) == 2 and "--i3d-sha256" in capsys.readouterr().err  # the hash must be confirmed
    assert main(args + ["--i3d-sha256", _sha(i3d_bytes)]) == 0
    data = json.loads((tmp_path / "run_a" / "eval.json").read_text())
    assert data["fvd"]["clips_a"] == 2 and data["fvd"]["clips_b"] == 2 and data["fvd"]["fvd"] >= 0
    assert "FVD" in capsys.readouterr().out
