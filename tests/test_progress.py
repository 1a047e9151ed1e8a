"""CLI progress bars: a live bar on a terminal, a line now and then in a log (no flood of carriage returns)."""

from __future__ import annotations

import io
import time

import yaml

from vqclip import progress


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


def test_moviepy_bar_logger_is_log_friendly():
    from vqclip.postproduction.export import make_logger

    logger = make_logger("bar", "out.mp4")
    log = io.StringIO()
    bar = logger.tqdm(total=5, file=log)
    assert bar.mininterval == progress.LOG_INTERVAL_S
    bar.close()


def test_render_cli_log_gets_few_progress_lines(tmp_path, capsys, monkeypatch, open_clip_files):
    """`vqclip render ... 2>log`: stderr is not a TTY, so the bar must not redraw at every step."""
    from vqclip.cli import main
    from vqclip.models.clip import Perceptor

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
        "generation": {"engine": "pixels", "seed": 1, "pixels": {
            "frames_per_prompt": 2, "post_denoise": "none"}, "views": {"count": 1},
            "iterations_first_frame": 20, "iterations_per_frame": 2},
        "output": {"images_interval": 0, "video": False, "contact_sheet": False},
    }
    preset = tmp_path / "story.yaml"
    preset.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["render", str(preset), "-o", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "frame 6/6" in captured.out + err
    assert err.count("render:") <= 4, err  # 30 steps in ~1 s: without the fix about 10 redraws
