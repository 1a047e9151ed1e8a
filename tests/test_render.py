"""The production loop end to end on tiny real-format models (taming yaml+ckpt, open_clip json+weights), on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from vqclip.settings.render import load_config
from vqclip.errors import ConfigError
from vqclip.production.render import render


@pytest.fixture
def tiny(taming_checkpoints, open_clip_files):
    """A preset dict for 32x32 renders with the tiny VQGAN (factor 2) and the tiny CLIP (32 px input)."""
    config, ckpt, _ = taming_checkpoints["vq"]
    return {
        "prompts": {"texts": "a red circle on a blue background"},
        "size": {"width": 32, "height": 32},
        "models": {
            "vqgan": {"config": str(config), "checkpoint": str(ckpt)},
            "clip": [{"spec": {k: str(v) for k, v in open_clip_files.items()}, "weight": 1.0}],
        },
        "generation": {"seed": 7, "iterations_first_frame": 6, "iterations_per_frame": 3, "cutouts": {"cutn": 4}, "device": "cpu"},
        "animation": {"frames": 3, "zoom": "0:(1.0), 2:(1.2)"},
        "output": {"fps": 6, "images_interval": 3},
    }


def _frames(out):
    return [np.asarray(Image.open(p)) for p in sorted((out / "frames").glob("*.png"))]


def test_three_frame_render_with_zoom_end_to_end(tiny, tmp_path):
    from vqclip.video import probe

    tiny["generation"]["seed"] = -1
    tiny["size"] = {"width": 64, "height": 64}
    events = []
    result = render(load_config(tiny), tmp_path / "out", callback=events.append)
    out = tmp_path / "out"

    assert result.completed and result.stop_reason == "done" and result.iterations == 6 + 3 + 3
    assert [p.name for p in result.frames] == ["000000.png", "000001.png", "000002.png"]
    for i, p in enumerate(result.frames):
        img = Image.open(p)
        assert img.size == (64, 64) and img.mode == "RGB"
        assert img.text["prompt"] == "a red circle on a blue background"
        assert img.text["seed"] == str(result.seed) and img.text["frame"] == str(i)
        assert img.text["iteration"] == str(6 if i == 0 else 3)
        assert img.text["model"].startswith("vqgan:") and "clip:" in img.text["model"]
    settings = yaml.safe_load((out / "settings.yaml").read_text())
    assert settings["generation"]["seed"] == result.seed >= 0  # the drawn seed is recorded
    assert load_config(settings).animation.zoom == "0:(1.0), 2:(1.2)"
    assert Image.open(out / "contact_sheet.png").size[0] > 64
    info = probe(out / "video.mp4")
    assert (info.codec, info.pix_fmt, info.width, info.height, info.n_frames) == ("h264", "yuv420p", 64, 64, 3)
    assert info.fps == pytest.approx(6)

    kinds = [e["event"] for e in events]
    assert kinds.count("iteration") == 12 and kinds.count("frame") == 3 and kinds[-1] == "done"
    assert kinds.count("preview") == 4  # every images_interval=3 steps: 2 in frame 0, 1 in each later frame
    it = next(e for e in events if e["event"] == "iteration")
    assert it["total_iterations"] == 12 and "total" in it["losses"] and "a red circle on a blue background" in it["losses"]
    assert next(e for e in events if e["event"] == "preview")["image"].size == (64, 64)


def test_any_size_is_output_exactly(tiny, tmp_path):
    tiny["size"] = {"width": 51, "height": 37}  # not multiples of the factor, odd for the video
    tiny["animation"] = {"frames": 2, "zoom": 1.1, "angle": 3}
    tiny["generation"].update(iterations_first_frame=2, iterations_per_frame=1)
    Image.new("RGB", (80, 60), (200, 30, 30)).save(tmp_path / "red.png")  # any size: fitted to the frame
    tiny["prompts"].update(init_image=str(tmp_path / "red.png"), target_images=f"{tmp_path / 'red.png'}:0.5")
    events = []
    result = render(tiny, tmp_path / "o", callback=events.append)
    assert [Image.open(p).size for p in result.frames] == [(51, 37), (51, 37)]
    assert f"image:{tmp_path / 'red.png'}" in events[0]["losses"]
    from vqclip.video import probe

    info = probe(result.video)
    assert (info.width, info.height) == (50, 36)  # the video needs even sides: cropped, not scaled


def test_loss_falls_for_a_fixed_prompt(tiny, tmp_path):
    tiny["generation"].update(iterations_first_frame=40, cutouts={"cutn": 8, "augmentations": []}, lr=0.2)
    tiny["animation"] = {"frames": 1}
    tiny["output"] = {"images_interval": 0, "video": False, "contact_sheet": False}
    losses = []
    render(tiny, tmp_path / "o", callback=lambda e: losses.append(e["losses"]["total"]) if e["event"] == "iteration" else None)
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.01, losses


def test_same_seed_same_frames_and_another_seed_differs(tiny, tmp_path):
    tiny["output"]["video"] = False
    a = _frames(render(tiny, tmp_path / "a").out_dir)
    b = _frames(render(tiny, tmp_path / "b").out_dir)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    tiny["generation"]["seed"] = 8
    c = _frames(render(tiny, tmp_path / "c").out_dir)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("stop_at", ["frame", "iteration"])
def test_interrupted_then_resumed_equals_uninterrupted(tiny, tmp_path, stop_at):
    tiny["animation"]["frames"] = 4
    tiny["generation"]["reset_optimizer"] = stop_at == "frame"  # both optimizer policies survive a resume
    whole = render(tiny, tmp_path / "whole")

    def stop(e):
        if stop_at == "frame" and e["event"] == "frame" and e["frame"] == 1:
            return "stop"  # after frame 2 of 4
        if stop_at == "iteration" and e["event"] == "iteration" and e["frame"] == 2 and e["iteration"] == 2:
            return "stop"  # in the middle of frame 3
        return None

    part = render(tiny, tmp_path / "part", callback=stop)
    assert not part.completed and part.stop_reason == "stopped" and len(part.frames) == 2 and part.video is None
    with pytest.raises(ConfigError, match="holds an unfinished render; continue it with --resume"):
        render(tiny, tmp_path / "part")
    changed = dict(tiny, generation=dict(tiny["generation"], lr=0.2))
    with pytest.raises(ConfigError, match=r"settings differ .*generation.lr: 0.1 -> 0.2"):
        render(changed, tmp_path / "part", resume=True)
    rest = render(tiny, tmp_path / "part", resume=True)
    assert rest.completed and rest.iterations == whole.iterations and len(rest.frames) == 4
    for x, y in zip(_frames(whole.out_dir), _frames(rest.out_dir)):
        assert np.array_equal(x, y)


def test_resume_without_state_and_max_iterations(tiny, tmp_path):
    with pytest.raises(ConfigError, match="--resume: .*resume.pt' does not exist"):
        render(tiny, tmp_path / "none", resume=True)
    tiny["generation"]["max_iterations"] = 8
    capped = render(tiny, tmp_path / "cap")
    assert capped.stop_reason == "max_iterations" and capped.iterations == 8 and len(capped.frames) == 2
    assert Image.open(capped.frames[1]).text["iteration"] == "2"
    tiny["generation"]["max_iterations"] = -1  # not part of the frame settings: may change on resume
    assert render(tiny, tmp_path / "cap", resume=True).iterations == 12


def test_ctrl_c_saves_and_stops_cleanly(tiny, tmp_path):
    import os
    import signal

    def press_ctrl_c(e):
        if e["event"] == "iteration" and e["frame"] == 1 and e["iteration"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # delivered to render's handler: finish the step, save, return

    part = render(tiny, tmp_path / "o", callback=press_ctrl_c)
    assert part.stop_reason == "interrupted" and not part.completed and len(part.frames) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    assert render(tiny, tmp_path / "o", resume=True).completed


@pytest.mark.parametrize("kind", ["gumbel", "transformer"])
def test_other_checkpoint_kinds_render(tiny, taming_checkpoints, tmp_path, kind):
    config, ckpt, _ = taming_checkpoints[kind]
    tiny["models"]["vqgan"] = {"config": str(config), "checkpoint": str(ckpt)}
    tiny["generation"].update(iterations_first_frame=2, iterations_per_frame=1)
    tiny["output"] = {"video": False, "contact_sheet": False}
    result = render(tiny, tmp_path / kind)
    assert result.completed and [Image.open(p).size for p in result.frames] == [(32, 32)] * 3


def test_local_vqgan_files_may_be_given_from_home(tiny, taming_checkpoints, tmp_path, monkeypatch):
    import shutil

    config, ckpt, _ = taming_checkpoints["vq"]
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for f in (config, ckpt):
        shutil.copy(f, home / "models" / f.name)
    monkeypatch.setenv("HOME", str(home))
    tiny["models"]["vqgan"] = {"config": f"~/models/{config.name}", "checkpoint": f"~/models/{ckpt.name}"}
    tiny["generation"].update(iterations_first_frame=2, iterations_per_frame=1)
    tiny["animation"]["frames"] = 1
    tiny["output"] = {"video": False, "contact_sheet": False}
    assert render(tiny, tmp_path / "out").completed


def test_several_perceptors_at_once(tiny, open_clip_files, tmp_path):
    import json

    import open_clip
    import torch

    # a second tiny CLIP with a 16-pixel input: its cutouts are made at their own size
    cfg = json.loads(open_clip_files["config"].read_text())
    cfg["vision_cfg"].update(image_size=16, patch_size=4)
    (tmp_path / "small.json").write_text(json.dumps(cfg))
    torch.manual_seed(1)
    torch.save(open_clip.CLIP(**cfg).state_dict(), tmp_path / "small.pt")
    tiny["models"]["clip"].append({"spec": {"config": str(tmp_path / "small.json"), "weights": str(tmp_path / "small.pt")}, "weight": 0.5})
    tiny["animation"]["frames"] = 1
    tiny["output"] = {"video": False}
    losses = []
    result = render(tiny, tmp_path / "o", callback=lambda e: losses.append(e["losses"]) if e["event"] == "iteration" else None)
    assert result.completed and len(losses) == 6
    assert Image.open(result.frames[0]).text["model"].endswith(", clip:tiny-clip, clip:small")


def test_half_precision_is_for_cuda_only():
    import torch

    from vqclip.production.precision import resolve_precision

    cpu = resolve_precision("auto", torch.device("cpu"))
    assert (cpu.name, cpu.dtype, cpu.scaler, cpu.channels_last) == ("fp32", None, None, False)
    with pytest.raises(ConfigError, match="generation.precision: 'fp16' is not allowed on cpu; use auto or fp32"):
        resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.gpu
def test_fp16_render_on_cuda(tiny, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    tiny["generation"].update(device="cuda", precision="fp16")
    tiny["output"] = {"video": False}
    assert render(tiny, tmp_path / "o").completed


# ----------------------------------------------------------------------------------------------
# The sampled family: a test double of a diffusion engine through the same loop and run folder

from dataclasses import dataclass as _dataclass  # noqa: E402

from vqclip.production.engines.base import SampledEngine  # noqa: E402


@_dataclass
class EchoOptions:
    """Settings of the test double (generation.echo)."""

    chunk: int = 2  # frames per sample() call
    steps: int = 3  # "denoising" steps reported per chunk


class EchoEngine(SampledEngine):
    """Frames from torch's global RNG, tinted by an anchor drawn in the first chunk (state that later chunks need)."""

    name = "echo"
    Options = EchoOptions
    reads_models = ()

    @classmethod
    def build(cls, ctx):
        return cls(ctx)

    def __init__(self, ctx):
        self.ctx, self.o, self.anchor = ctx, ctx.options(self.name), None

    @classmethod
    def chunks(cls, cfg):
        n, c = cfg.animation.frames, cfg.generation.sections[cls.name].chunk
        return [range(s, min(s + c, n)) for s in range(0, n, c)]

    @classmethod
    def chunk_iterations(cls, cfg, frames):
        return cfg.generation.sections[cls.name].steps

    def sample(self, frames, emit):
        if self.anchor is None:
            self.anchor = torch.rand(3)
        for i in range(self.o.steps):
            if emit({"event": "iteration", "frame": frames.start, "iteration": i + 1, "iterations": self.o.steps, "losses": {}}) == "stop":
                return None
        return [(0.5 * torch.rand(1, 3, self.ctx.height, self.ctx.width) + 0.5 * self.anchor[None, :, None, None]) for _ in frames]

    def state_dict(self):
        return {"anchor": self.anchor}

    def load_state_dict(self, state):
        self.anchor = state["anchor"]


@pytest.fixture
def echo(monkeypatch):
    from vqclip.production.engines import ENGINES

    monkeypatch.setitem(ENGINES, "echo", f"{__name__}:EchoEngine")  # a real engine registers the same one-line way
    return {"prompts": {"texts": "a red circle"}, "size": {"width": 20, "height": 16},
            "generation": {"engine": "echo", "seed": 2, "device": "cpu", "echo": {"chunk": 2, "steps": 3}},
            "animation": {"frames": 5}, "output": {"images_interval": 0, "video": False, "contact_sheet": False}}


def _pixels(result):
    return [np.asarray(Image.open(p)) for p in result.frames]


def test_a_sampled_engine_renders_chunks_with_numbered_steps(tmp_path, echo):
    events = []
    result = render(load_config(echo), tmp_path / "out", callback=events.append)
    steps = [e for e in events if e["event"] == "iteration"]
    assert result.completed and len(result.frames) == 5 and result.iterations == 9  # 3 chunks x 3 steps
    assert [e["total_iteration"] for e in steps] == list(range(1, 10)) and {e["total_iterations"] for e in steps} == {9}
    assert [e["frame"] for e in events if e["event"] == "frame"] == [0, 1, 2, 3, 4]
    assert Image.open(result.frames[0]).text["model"] == "echo"
    settings = yaml.safe_load(result.settings.read_text())
    assert "clip" not in settings["models"] and "lr" not in settings["generation"] and "cutouts" not in settings["generation"]
    assert load_config(result.settings).generation.sections["echo"].chunk == 2


def test_a_sampled_render_stopped_mid_chunk_resumes_to_the_same_frames(tmp_path, echo):
    cfg = load_config(echo)
    whole = render(cfg, tmp_path / "whole")

    def stop_in_second_chunk(event):
        return "stop" if event["event"] == "iteration" and event["total_iteration"] == 5 else None

    first = render(cfg, tmp_path / "split", callback=stop_in_second_chunk)
    assert first.stop_reason == "stopped" and len(first.frames) == 2  # the first chunk is kept, the second redone
    rest = render(cfg, tmp_path / "split", resume=True)
    assert rest.completed and rest.iterations == 9
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(whole), _pixels(rest), strict=True))


def test_an_optimized_setting_given_to_a_sampled_engine_is_a_clear_error(echo):
    with pytest.raises(ConfigError, match=r"^generation\.lr: 0\.2 is set, but generation\.engine 'echo' does not read it; it is read by the optimized engines \(vqgan, pixels\)"):
        load_config(echo, ["generation.lr=0.2"])
    with pytest.raises(ConfigError, match=r"^models\.vqgan: 'toy' is set, but generation\.engine 'echo' does not read it; it is read by generation\.engine: vqgan"):
        load_config(echo, ["models.vqgan=toy"])


def test_a_finished_render_is_extended_with_more_frames(tiny, tmp_path):
    """`--resume --set animation.frames=N` continues a finished render: the same frames as N from the start."""
    tiny["animation"]["frames"] = 4
    whole = render(tiny, tmp_path / "whole")
    tiny["animation"]["frames"] = 2
    assert render(tiny, tmp_path / "ext").completed
    tiny["animation"]["frames"] = 4
    longer = render(tiny, tmp_path / "ext", resume=True)
    assert longer.completed and len(longer.frames) == 4 and longer.iterations == whole.iterations
    for x, y in zip(_frames(whole.out_dir), _frames(longer.out_dir)):
        assert np.array_equal(x, y)
    tiny["animation"]["frames"] = 3
    with pytest.raises(ConfigError, match=r"only a larger animation.frames may extend"):
        render(tiny, tmp_path / "ext", resume=True)


def test_state_is_saved_inside_the_first_frame_so_a_hard_kill_costs_few_steps(tiny, tmp_path):
    """output.save_every: a crash with no handler (as kill -9) at step 5 of frame 0 resumes from step 4, to the same frames."""
    import torch as _torch

    whole = render(tiny, tmp_path / "whole")
    tiny["output"]["save_every"] = 2

    def crash(e):
        if e["event"] == "iteration" and e["frame"] == 0 and e["iteration"] == 5:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        render(tiny, tmp_path / "o", callback=crash)
    state = _torch.load(tmp_path / "o" / "resume.pt", weights_only=True)
    assert (state["frame"], state["iteration"]) == (0, 4) and not list((tmp_path / "o").glob(".*tmp*"))
    assert not (tmp_path / "o" / ".lock").exists()  # released on the error path too
    rest = render(tiny, tmp_path / "o", resume=True)
    assert rest.completed and rest.iterations == whole.iterations
    for x, y in zip(_frames(whole.out_dir), _frames(rest.out_dir)):
        assert np.array_equal(x, y)


def test_sgd_gets_a_learning_rate_that_moves_the_frame(tmp_path):
    """optimizer: sgd with lr left null: its own default (Adam's x100); at Adam's lr the frame would not move."""
    base = {"prompts": {"texts": "a red circle on a blue background"}, "size": {"width": 32, "height": 32},
            "models": {"vqgan": "toy", "clip": ["toy"]}, "generation": {"device": "cpu", "seed": 1, "optimizer": "sgd"},
            "animation": {"frames": 1}, "output": {"video": False, "contact_sheet": False, "images_interval": 0}}
    assert load_config(base).generation.lr == pytest.approx(10.0)  # vqgan's 0.1 x 100
    assert load_config(dict(base, generation=dict(base["generation"], lr=0.5))).generation.lr == 0.5  # a given lr is kept

    def pixels(steps, lr=None):
        g = dict(base["generation"], iterations_first_frame=steps, **({"lr": lr} if lr else {}))
        r = render(dict(base, generation=g), tmp_path / f"s{steps}-{lr}")
        return np.asarray(Image.open(r.frames[0])).astype(float)

    start = pixels(1)
    assert np.abs(pixels(20) - start).mean() > 10  # grey levels: the default moves it
    assert np.abs(pixels(20, lr=0.1) - pixels(1, lr=0.1)).mean() < 1  # why: Adam's lr leaves an SGD frame as it was
