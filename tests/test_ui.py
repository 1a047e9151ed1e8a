"""The notebook panels driven from Python: set values, click buttons, check what they did.

Runs under the installed ipywidgets (8.x here) and, through tests/test_ui_ipywidgets7.py, under
Colab's 7.7.1. Renders use smoke mode (toy models, tiny sizes); while the toy pack is missing they
use tiny models written by conftest in the real file formats.
"""

from __future__ import annotations

import io
import re

import ipywidgets as widgets
import pytest
import yaml

from vqclip.settings.render import load_config, list_presets
from vqclip.ui.common import setup_notebook, smoke_preset
from vqclip.ui.compat import IPYWIDGETS_MAJOR, clear_upload, section, tabs, uploaded_files

from helpers_media import make_tone


def toy_pack_present() -> bool:
    from vqclip.models.registry import packaged_dir

    d = packaged_dir()
    return all((d / n).is_file() for n in ("toy_vqgan.yaml", "toy_vqgan.ckpt", "toy_clip.json", "toy_clip.pt"))


@pytest.fixture
def smoke_env(tmp_path, monkeypatch, taming_checkpoints, open_clip_files):
    """A smoke-mode NotebookEnv writing under tmp_path (tiny local models if the toy pack has not landed)."""
    monkeypatch.setenv("VQCLIP_SMOKE", "1")
    if not toy_pack_present():
        config, ckpt, _ = taming_checkpoints["vq"]
        monkeypatch.setenv("VQCLIP_SMOKE_SET", f"models.vqgan={{config: {config}, checkpoint: {ckpt}}};"
                           f"models.clip=[{{config: {open_clip_files['config']}, weights: {open_clip_files['weights']}}}]")
    return setup_notebook(out_root=tmp_path / "out")


def fake_upload(upload: widgets.FileUpload, name: str, content: bytes) -> None:
    """Do what the browser does when a file is picked, in the widget's own major version."""
    if IPYWIDGETS_MAJOR >= 8:
        import datetime

        upload.value = ({"name": name, "type": "audio/wav", "size": len(content), "content": memoryview(content),
                         "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    else:
        upload.set_trait("metadata", [{"name": name, "type": "audio/wav", "size": len(content), "lastModified": 0}])
        upload.set_trait("data", [content])
        upload._counter += 1


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    return make_tone(io.BytesIO(), secs=seconds, sr=rate, amplitude=8000 / 32767).getvalue()


# --- compat ------------------------------------------------------------------------------------


def test_uploaded_files_in_this_major():
    up = widgets.FileUpload()
    assert uploaded_files(up) == []
    fake_upload(up, "song.wav", b"RIFF1234")
    assert uploaded_files(up) == [("song.wav", b"RIFF1234")]
    clear_upload(up)
    assert uploaded_files(up) == []


def test_uploaded_files_reads_both_shapes():
    class Fake:
        value = {"a.wav": {"metadata": {"name": "a.wav"}, "content": b"7"}}

    assert uploaded_files(Fake()) == [("a.wav", b"7")]
    Fake.value = ({"name": "b.wav", "type": "", "size": 1, "content": memoryview(b"8"), "last_modified": 0},)
    assert uploaded_files(Fake()) == [("b.wav", b"8")]


def test_tabs_and_sections():
    t = tabs([widgets.Label("a"), widgets.Label("b")], ["One", "Two"])
    titles = t.titles if t.has_trait("titles") else tuple(t.get_title(i) for i in range(2))
    assert tuple(titles) == ("One", "Two")
    s = section("More", [widgets.Label("x")])
    assert s.body.layout.display == "none"
    s.toggle.value = True
    assert s.body.layout.display == "" and s.toggle.icon == "caret-down"


# --- environment and smoke mode ------------------------------------------------------------------


def test_setup_notebook_local(tmp_path, monkeypatch):
    monkeypatch.delenv("VQCLIP_SMOKE", raising=False)
    monkeypatch.setenv("VQCLIP_OUT", str(tmp_path / "o"))
    env = setup_notebook()
    assert env.out_root == tmp_path / "o" and env.out_root.is_dir()
    assert not env.in_colab and not env.smoke
    assert "outputs in" in env.describe()


@pytest.mark.parametrize("name", [n for n, _ in list_presets()])
def test_every_preset_shrinks_to_a_valid_smoke_preset(name, smoke_env):
    from vqclip.ui.common import preset_data

    cfg = load_config(smoke_preset(preset_data(name)))
    assert cfg.size.width <= 64 and cfg.animation.frames <= 12
    g = cfg.generation
    if g.engine in ("t2v_zero", "animatediff"):  # the toy diffusion pack, a few denoising steps
        assert cfg.models.diffusion == "toy" and g.sections[g.engine].steps <= 4
    else:
        assert g.iterations_first_frame <= 4


def test_pre_panel_leaves_out_settings_a_pixels_preset_does_not_use(smoke_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(smoke_env, preset="diver_story", estimate=False)
    keys = [o.partition("=")[0] for o in p.overrides()]
    assert "size.width" in keys and "models.vqgan" not in keys and "generation.cutouts.cutn" not in keys
    assert p.config().generation.engine == "pixels"  # loads: no ignored setting given


# --- pre-production ------------------------------------------------------------------------------


def test_pre_panel_preset_style_size_and_save(smoke_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(smoke_env, preset="klee_garden", estimate=False)
    assert p.prompt.value == "Garden full of flowers and plants in Paul Klee style"
    assert p.model.value == "imagenet_f16_16384" and "downloaded" in p.model.label
    assert "good for" in p.model_info.value
    p.preset.value = "zoom_tunnel"
    assert "tunnel" in p.prompt.value and (p.width.value, p.height.value) == (576, 320)
    p.style.value = "ukiyo-e woodblock print"
    p.add_style.click()
    p.add_style.click()  # once only
    assert p.prompt.value.count("ukiyo-e woodblock print") == 1
    p.model.value = "wikiart_16384"
    assert "painterly" in p.model_info.value
    p.aspect.value = "9:16"
    w, h = p.width.value, p.height.value
    assert w < h  # a portrait size was picked
    p.save_name.value = "bad name!"
    p.save_button.click()
    assert "not allowed" in p.save_status.value and p.saved_path is None
    p.save_name.value = "my_tunnel"
    p.save_button.click()
    assert p.saved_path == smoke_env.presets / "my_tunnel.yaml"
    data = yaml.safe_load(p.saved_path.read_text())
    assert "ukiyo-e" in data["prompts"]["texts"]
    assert data["size"]["width"] < data["size"]["height"] and data["models"]["vqgan"] == "wikiart_16384"  # not shrunk
    load_config(p.saved_path)  # a valid preset


def test_pre_panel_memory_check_and_largest_size(smoke_env):
    from vqclip.preproduction.estimate import GiB, GpuInfo
    from vqclip.ui.pre import PreProductionPanel

    smoke_env.gpu = GpuInfo("Small GPU", 5 * GiB, 5 * GiB)
    p = PreProductionPanel(smoke_env, preset="klee_garden")
    assert "checking" in p.memory.value and p.last_fit is None  # the check runs in the background
    assert p.wait_estimate() is not None and not p.last_fit.fits  # 640x360 needs ~7 GiB
    assert "too big" in p.memory.value and "Small GPU" in p.memory.value
    assert not p.use_largest.disabled
    w, h = p.last_fit.largest
    p.use_largest.click()
    assert (p.width.value, p.height.value) == (w, h) and w * 9 == pytest.approx(h * 16, rel=0.06)
    p.width.value = 4096  # a change makes the last answer stale at once, not after the check
    assert p.last_fit is None and "checking" in p.memory.value and p.use_largest.disabled
    p.width.value = w
    assert p.wait_estimate() is not None and p.last_fit.fits and p.use_largest.disabled and "fits" in p.memory.value


def test_pre_panel_preview_shows_the_first_frame(smoke_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(smoke_env, preset="fast_draft", estimate=False)
    p.preview_button.click()  # renders in the background: the panel answers at once
    assert p._preview_job is not None
    p.save_name.value = "while_previewing"
    p.save_button.click()  # a click while the preview runs acts at once, with the name typed now
    assert p.saved_path == smoke_env.presets / "while_previewing.yaml"
    p._preview_job.wait(120)
    assert p.preview_result is not None, p.preview_status.value
    assert len(p.preview_result.frames) == 1
    assert p.preview_image.value[:4] == b"\x89PNG" and "preview done" in p.preview_status.value


# --- production and post-production --------------------------------------------------------------


def test_production_render_stop_resume_and_post(smoke_env):
    from vqclip.ui.post import PostProductionPanel
    from vqclip.ui.production import ProductionPanel
    from vqclip.video import probe

    prod = ProductionPanel(smoke_env, preset="zoom_tunnel")
    assert prod.name.value == "zoom_tunnel"
    original = prod._on_event

    def stop_after_first_frame(event):  # a person pressing Stop while frame 0 is written
        if event["event"] == "frame" and event["frame"] == 0:
            prod.stop_button.click()
        return original(event)

    prod._on_event = stop_after_first_frame
    prod.render_button.click()  # background thread
    result = prod.wait(120)
    assert result is not None, prod.message.value
    assert not result.completed and result.stop_reason == "stopped" and len(result.frames) == 1
    assert "Resume" in prod.message.value and (prod.out_dir / "resume.pt").is_file()
    assert re.search(r"stopped \([01] steps? after Stop\)", prod.message.value), prod.message.value
    assert prod.contact_sheet.value[:4] == b"\x89PNG"

    prod._on_event = original
    prod.render_button.click()  # not resume: a new render in a fresh folder, the stopped one kept
    fresh = prod.wait(120)
    assert fresh.completed and fresh.out_dir == smoke_env.renders / "zoom_tunnel-2", prod.message.value
    assert prod.name.value == "zoom_tunnel-2" and "zoom_tunnel holds an earlier render" in prod.message.value
    assert len(list((smoke_env.renders / "zoom_tunnel" / "frames").glob("*.png"))) == 1  # untouched
    prod.name.value = "zoom_tunnel"
    prod.resume_button.click()
    result = prod.wait(120)
    assert result.completed and len(result.frames) == 4, prod.message.value
    assert prod.progress.value == prod.progress.max and "ETA" in prod.status.value
    assert {"iteration", "preview", "frame", "done"} <= set(prod.events)
    assert prod.preview.value[:4] == b"\x89PNG"
    assert isinstance(prod.video_box.children[0], widgets.Video)
    info = probe(result.video)
    assert info.codec == "h264" and info.n_frames == 4

    from vqclip.ui.judge import judge_spec

    assert not prod.judge.button.disabled and judge_spec(prod.out_dir) == "toy"  # a toy render is judged offline
    prod.judge.button.click()
    report = prod.judge.job.wait(120)
    assert report is not None and report.frames == 4, prod.judge.status.value
    assert "4 frames" in prod.judge.status.value and "inflated" in prod.judge.status.value  # the toy CLIP also guided it
    assert prod.judge.plot.value[:4] == b"\x89PNG" and (prod.out_dir / "eval.json").is_file()

    post = PostProductionPanel(smoke_env)
    assert not post.judge.button.disabled and post.judge.run_dir() == prod.out_dir
    assert post.renders.value == (str(prod.out_dir),)
    post.speed.value = 0.5
    post.boomerang.value = True
    post.transition.value = "crossfade"
    post.title.value = "Hello"
    post.fade_in.value, post.fade_out.value = 0.1, 0.1
    fake_upload(post.music, "my song.wav", wav_bytes())
    assert post.music_path is not None and post.music_path.name == "my_song.wav" and post.music_path.is_file()
    post.output_name.value = "final cut"
    post.export_button.click()
    assert post.result is not None, post.message.value
    assert post.result.path == smoke_env.out_root / "post" / "final_cut.mp4"
    info = probe(post.result.path)
    assert info.has_audio and info.codec == "h264" and info.width % 2 == 0
    # 4 frames at 12 fps, half speed, boomerang: ~1.3 s
    assert post.result.duration == pytest.approx(2 * 2 * 4 / 12, rel=0.35)
    assert isinstance(post.player.children[0], widgets.Video)


def test_post_panel_errors_and_gif(smoke_env, tmp_path):
    from vqclip.ui.post import PostProductionPanel

    post = PostProductionPanel(smoke_env)
    assert post.renders.options == ()
    post.export_button.click()
    assert "none chosen" in post.message.value and post.result is None
    fake_upload(post.music, "notes.txt", b"hello")
    assert "not allowed" in post.music_status.value and post.music_path is None


def test_post_panel_per_scene_speed_title_placement_and_colab_download(smoke_env, monkeypatch):
    import dataclasses
    import sys
    import types

    from PIL import Image

    from vqclip.ui.post import PostProductionPanel

    for name in ("dawn", "dusk"):
        frames = smoke_env.renders / name / "frames"
        frames.mkdir(parents=True)
        Image.new("RGB", (48, 32)).save(frames / "000000.png")
        (smoke_env.renders / name / "settings.yaml").write_text("output: {fps: 12}\n")
    song = smoke_env.out_root / "uploads" / "drums.wav"
    song.parent.mkdir(parents=True)
    song.write_bytes(wav_bytes())
    (smoke_env.renders / "dusk" / "settings.yaml").write_text(yaml.safe_dump(
        {"output": {"fps": 12}, "animation": {"zoom": {"beats": str(song), "base": 1.0, "pulse": 1.1}}}))
    post = PostProductionPanel(smoke_env)
    dawn, dusk = str(smoke_env.renders / "dawn"), str(smoke_env.renders / "dusk")
    post.renders.value = (dawn, dusk)
    assert len(post.scene_box.children) == 2  # one speed per scene
    post.speed.value = 2.0  # "all" sets every scene
    post.scene_speeds[dusk].value = 0.5
    post.title.value = "The end"
    post.title_duration.value, post.title_position.value = 6.5, "bottom"
    assert post.use_song.layout.display == "" and "drums.wav" in post.use_song.description  # dusk's zoom follows it
    post.use_song.click()
    data = post.post_dict()
    assert data["music"]["path"] == str(song)
    assert [s["speed"] for s in data["scenes"]] == [2.0, 0.5]
    assert data["titles"][0] | {"text": "The end", "duration": 6.5, "position": "bottom"} == data["titles"][0]
    assert post.download_button.layout.display == "none"  # not on Colab

    got = []
    colab = types.ModuleType("google.colab")
    colab.files = types.SimpleNamespace(download=got.append)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    on_colab = PostProductionPanel(dataclasses.replace(smoke_env, in_colab=True))
    assert on_colab.download_button.layout.display == "" and on_colab.download_button.disabled
    on_colab.result = types.SimpleNamespace(path=smoke_env.out_root / "post" / "piece.mp4")
    on_colab.download_button.disabled = False
    on_colab.download_button.click()
    assert got == [str(smoke_env.out_root / "post" / "piece.mp4")]


def test_toy_models_are_named_with_their_size_and_unknown_words_warned(smoke_env, tmp_path, monkeypatch):
    import dataclasses

    from vqclip.ui.pre import PreProductionPanel
    from vqclip.ui.production import ProductionPanel
    from vqclip.ui.toy import unknown_words

    assert unknown_words("A watercolor FOX on a blue background, red star") == ["watercolor", "fox"]
    p = PreProductionPanel(smoke_env, preset="klee_garden", estimate=False)
    assert "SMOKE MODE" in p.toy_note.value and " MB" in p.toy_note.value and "Untick SMOKE" in p.toy_note.value
    p.prompt.value = "a watercolor fox"
    assert "do not know: watercolor, fox" in p.toy_note.value
    p.prompt.value = "a red circle on a blue background"
    assert "do not know" not in p.toy_note.value
    assert "SMOKE MODE" in ProductionPanel(smoke_env, preset="klee_garden").mode_note.value

    real = dataclasses.replace(smoke_env, smoke=False)  # SMOKE switched off: no toy note for a real preset
    p = PreProductionPanel(real, preset="klee_garden", estimate=False)
    assert p.toy_note.value == "" and ProductionPanel(real, preset="klee_garden").mode_note.value == ""
    p.preset.value = "default"  # the toy preset says so without smoke mode, and warns about unknown words
    assert "toy models" in p.toy_note.value and "SMOKE" not in p.toy_note.value
    p.prompt.value = "a fox"
    assert "do not know: fox" in p.toy_note.value


def test_production_status_shows_downloads_and_a_sane_eta(smoke_env, monkeypatch):
    import vqclip.ui.production as production
    from vqclip.ui.common import error_html

    prod = production.ProductionPanel(smoke_env, preset="klee_garden")
    prod._on_event({"event": "download", "name": "imagenet_f16_16384", "bytes": 120_000_000, "total": 980_000_000})
    assert prod.status.value == "downloading imagenet_f16_16384: 120 of 980 MB"
    clock = iter([100.0, 100.001, 100.002, 104.0])  # the 2nd step 1 ms after the 1st: no "1000 steps/s"
    monkeypatch.setattr(production.time, "time", lambda: next(clock))
    prod._it0 = -1
    event = {"event": "iteration", "frame": 0, "frames": 4, "iteration": 1, "iterations": 10, "total_iteration": 1,
             "total_iterations": 41, "losses": {"total": 0.9}}
    prod._on_event(event)
    prod._on_event({**event, "iteration": 2, "total_iteration": 2})
    assert "ETA: measuring" in prod.status.value and "steps/s" not in prod.status.value
    prod._on_event({**event, "iteration": 2, "total_iteration": 2})
    prod._on_event({**event, "iteration": 9, "total_iteration": 9})  # 8 steps in 4 s: 2 steps/s, 32 left
    assert "2.0 steps/s" in prod.status.value and "ETA 0:16" in prod.status.value

    long = "download failed: " + "the host did not answer; " * 80
    shown = error_html(long)
    assert len(shown.split("<details>")[0]) < 400 and "<details>" in shown and long.strip()[:300] in shown
