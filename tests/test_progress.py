"""CLI progress: core events become a live bar on a terminal and a line now and then in a log."""

from __future__ import annotations

import io
import time

import pytest
import yaml

from vqclip import progress
from vqclip.progress import ConsoleProgress

from helpers_media import make_render


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _fast_updates(bar, n: int = 60, pause: float = 0.01) -> None:
    for _ in range(n):
        time.sleep(pause)
        bar.update(1)
    bar.close()


def test_bar_interval_terminal_vs_log():
    assert progress.bar_interval(_Terminal()) == progress.TERMINAL_INTERVAL_S
    assert progress.bar_interval(io.StringIO()) == progress.LOG_INTERVAL_S
    assert progress.bar_interval(object()) == progress.LOG_INTERVAL_S  # no isatty: treat as a log


def test_console_bar_redraws_on_a_terminal_but_not_in_a_log():
    term, log = _Terminal(), io.StringIO()
    _fast_updates(progress.console_bar(total=60, file=term))
    _fast_updates(progress.console_bar(total=60, file=log))
    assert term.getvalue().count("\r") >= 4  # ~0.6 s of updates at 0.1 s
    assert log.getvalue().count("\r") <= 2  # the first draw and the final one


def _render_events(frames=2, steps=3):
    total = frames * steps
    for i in range(total):
        f = i // steps
        yield {"event": "iteration", "frame": f, "frames": frames, "iteration": i % steps + 1, "iterations": steps,
               "total_iteration": i + 1, "total_iterations": total, "losses": {"total": 1.0 / (i + 1)}}
        if i % steps == steps - 1:
            yield {"event": "frame", "frame": f, "frames": frames, "path": f"frames/{f:06d}.png"}
            yield {"event": "preview", "frame": f, "iteration": steps, "image": object()}  # not drawn


def test_render_events_become_one_bar_and_frame_lines(capsys):
    term = _Terminal()
    with ConsoleProgress(term) as show:
        for e in _render_events():
            show(e)
        assert show.bars[("render",)].n == 6
    out = term.getvalue()
    assert "render: 100%" in out and "6/6" in out and "frame=2/2" in out and "loss=0.167" in out
    assert "frame 1/2: frames/000000.png" in out and "frame 2/2: frames/000001.png" in out


def test_resumed_render_bar_starts_where_the_state_left_off():
    log = io.StringIO()
    with ConsoleProgress(log) as show:
        show({"event": "iteration", "frame": 5, "frames": 6, "iteration": 1, "iterations": 10,
              "total_iteration": 51, "total_iterations": 60, "losses": {}})  # a sampled engine reports no losses
        assert show.bars[("render",)].n == 51


def test_download_and_export_events_become_bars_that_close_when_done():
    log = io.StringIO()
    with ConsoleProgress(log) as show:
        for done in (0, 512, 1024):
            show({"event": "download", "name": "vqgan_imagenet_f16_16384", "file": "last.ckpt", "bytes": done, "total": 1024})
        assert not show.bars  # finished: closed
        for done in range(1, 5):
            show({"event": "export", "path": "/x/out.gif", "stage": "gif", "done": done, "total": 8})
        assert show.bars[("export", "/x/out.gif", "gif")].n == 4
        show({"event": "something_new", "value": 1})  # a new kind of event never breaks the CLI
    out = log.getvalue()
    assert "download last.ckpt" in out and "1.00k/1.00k" in out and "gif out.gif" in out


def test_post_cli_in_a_log_gets_few_progress_lines(tmp_path, capsys):
    """`vqclip post ... 2>log`: export events end as a bar that does not redraw every frame."""
    from vqclip.cli import main

    make_render(tmp_path / "r", n=48)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"scenes": ["r"], "output": {"path": "out.gif", "formats": ["mp4"]}}))
    assert main(["post", str(job)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "out.gif" in captured.out and "out.mp4" in captured.out
    err = captured.err
    assert "gif out.gif" in err and "video out.mp4" in err
    assert err.count("\r") <= 6, err  # 2 bars x (first draw + final): no redraw per frame


def test_render_cli_log_gets_few_progress_lines(tmp_path, capsys, monkeypatch, open_clip_files):
    """`vqclip render ... 2>log`: stderr is not a TTY, so the bar must not redraw at every step."""
    import inspect

    from vqclip.cli import main
    from vqclip.models.clip import Perceptor
    from vqclip.production.render import render_cli

    if "callback" not in inspect.signature(render_cli).parameters:
        pytest.skip("render_cli(..., callback) arrives with the seam's render.py")
    original = Perceptor.encode_image

    def slow(self, x01):  # steps slow enough that tqdm's default 0.1 s interval would redraw many times
        time.sleep(0.03)
        return original(self, x01)

    monkeypatch.setattr(Perceptor, "encode_image", slow)
    spec = {"config": str(open_clip_files["config"]), "weights": str(open_clip_files["weights"])}
    data = {
        "prompts": {"scenes": [{"texts": "a red square"}, {"texts": "a blue circle"}]},
        "size": {"width": 32, "height": 24},
        "models": {"clip": [{"spec": spec, "weight": 1.0}]},
        "generation": {"engine": "pixels", "seed": 1, "iterations_first_frame": 20, "iterations_per_frame": 2,
                       "pixels": {"frames_per_prompt": 2, "post_denoise": "none"}, "views": {"count": 1}},
        "output": {"images_interval": 0, "video": False, "contact_sheet": False},
    }
    preset = tmp_path / "story.yaml"
    preset.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["render", str(preset), "-o", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "frame 6/6" in captured.out + err
    assert err.count("render:") <= 4, err  # 30 steps in ~1 s: without the sparse interval about 10 redraws
