"""`vqclip eval` on a real render: the default preset (toy pack), a short version, judged by the toy CLIP."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from vqclip.metrics import evaluate
from vqclip.production.render import render
from vqclip.settings.render import load_config

pytestmark = pytest.mark.slow  # one short toy render (~1-2 min on 2 shared cores)

DISTRACTOR = "a yellow star on a green background"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default_run")
    result = render(load_config("default", ["animation.frames=4"]), out)
    assert result.completed
    return out


def test_the_render_scores_higher_on_its_own_prompt_than_on_a_distractor(default_run):
    own = evaluate(default_run, clip="toy", write=False)
    other = evaluate(default_run, clip="toy", prompt=DISTRACTOR, write=False)
    assert own.prompts[0] == "a red circle on a blue background"  # read from settings.yaml's timeline
    assert own.clip_score > other.clip_score + 20
    assert own.judge_guided and any("inflated" in n for n in own.notes)  # toy guided it and judges it


def test_shuffled_frames_score_lower_consistency_and_more_flicker(default_run, tmp_path):
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    frames = sorted((default_run / "frames").glob("*.png"))
    for new, old in enumerate([0, 3, 1, 2]):  # far-apart frames of the zoom next to each other
        shutil.copy(frames[old], shuffled / f"{new:06d}.png")
    prompt = "a red circle on a blue background"
    original = evaluate(default_run, clip="toy", prompt=prompt, write=False)
    mixed = evaluate(shuffled, clip="toy", prompt=prompt, write=False)
    assert mixed.consistency < original.consistency
    assert mixed.flicker > original.flicker
    assert mixed.clip_score == pytest.approx(original.clip_score, rel=1e-5)  # same frames, same mean score


def test_eval_writes_json_and_plot_into_the_run_folder(default_run):
    events = []
    report = evaluate(default_run, clip="toy", callback=events.append)
    data = json.loads(report.json_path.read_text())
    assert report.json_path == default_run / "eval.json" and data["clip_score"] == pytest.approx(report.clip_score)
    assert np.asarray(Image.open(report.plot_path)).shape[2] == 3
    assert events[-1] == {"event": "eval", "run": str(default_run), "stage": "clip", "done": 4, "total": 4}
