"""benchmarks/engines.py: which preset each engine runs from, and the configs every case renders."""

from __future__ import annotations

import pytest

from benchmarks import engines
from vqclip.production.engines import ENGINES
from vqclip.settings.render import load_config


def test_every_registered_engine_with_a_toy_preset_takes_part():
    found = {e: engines.toy_preset(e) for e in ENGINES}
    assert found["vqgan"][0] == "default"  # the bundled toy preset itself
    label, pixels = found["pixels"]
    assert label.endswith("(toy models)") and pixels["models"]["clip"] == [{"spec": "toy"}]
    assert pixels["models"]["download"] is False and "pixels" not in pixels["generation"]  # engine defaults, offline
    assert engines.toy_preset("no_such_engine") is None


@pytest.mark.parametrize("engine", ["vqgan", "pixels"])
@pytest.mark.parametrize("case", list(engines.CASES))
def test_each_case_is_a_valid_short_render_of_the_same_prompts(engine, case):
    _, base = engines.toy_preset(engine)
    cfg = load_config(engines.case_config(base, case, 8, 64, 3))
    assert (cfg.generation.engine, cfg.animation.frames, cfg.size.width, cfg.generation.seed) == (engine, 8, 64, 3)
    assert not cfg.output.video and not cfg.output.contact_sheet
    texts = [s.texts for s in cfg.prompts.scenes] or [cfg.prompts.texts]
    assert texts[0] == "a red circle on a blue background"
    assert len(texts) == (2 if case == "timeline+zoom" else 1)
