"""Every bundled preset loads and validates; the documented ones say what they make, their T4 time and memory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vqclip.settings.render import format_preset_table, list_presets, load_config

PRESETS = Path(__file__).resolve().parents[1] / "presets"
ALL = sorted(p.stem for p in PRESETS.glob("*.yaml"))
# The gallery of issue 6; default (toy) and diver_story (pixel engine) are documented by their owners.
GALLERY = ["klee_garden", "zoom_tunnel", "diver_vqgan", "vertical_clip", "wikiart_painting", "fast_draft",
           "gumbel_detail", "coco_street", "square_mandala"]
T4_LINE = re.compile(r"^# On a T4: ~(\d+) min rendering \((\d+) steps x ~([\d.]+) s, (fp16|fp32)\), ~([\d.]+) GiB GPU memory", re.M)


def test_the_gallery_has_at_least_eight_presets():
    assert len(GALLERY) >= 8 and set(GALLERY) <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_preset_loads_and_validates(name):
    cfg = load_config(name)  # by bundled name, as `vqclip render NAME` does
    assert cfg.description, f"{name}: no description for `vqclip presets`"
    assert cfg.animation.frames >= 1 and cfg.size.width >= 16
    assert load_config(PRESETS / f"{name}.yaml") == cfg  # and by path


def test_vqclip_presets_lists_the_gallery():
    listed = dict(list_presets())
    table = format_preset_table()
    for name in GALLERY:
        assert listed[name]
        assert name in table


@pytest.mark.parametrize("name", GALLERY)
def test_gallery_header_says_what_it_makes_and_its_t4_cost(name):
    text = (PRESETS / f"{name}.yaml").read_text(encoding="utf-8")
    header = text.split("\ndescription:")[0]
    assert "Makes:" in header and "Downloads" in header, name
    m = T4_LINE.search(header)
    assert m, f"{name}: header lacks the '# On a T4: ...' line"
    from vqclip.production.render import planned_iterations

    assert int(m.group(2)) == planned_iterations(load_config(name))  # steps match the settings


def test_paper_example_is_the_papers_setting():
    cfg = load_config("klee_garden")
    assert cfg.prompts.texts == "Garden full of flowers and plants in Paul Klee style"
    assert (cfg.size.width, cfg.size.height, cfg.models.vqgan) == (640, 360, "imagenet_f16_16384")
    assert cfg.output.images_interval == 50 and cfg.generation.max_iterations == -1


def test_diver_story_and_vertical_and_wikiart():
    diver = load_config("diver_vqgan")
    assert len(diver.prompts.scenes) == 5 and "fifth avenue" in diver.prompts.scenes[0].texts
    assert diver.generation.engine == "vqgan"
    v = load_config("vertical_clip")
    assert v.size.width * 16 == v.size.height * 9
    assert load_config("wikiart_painting").models.vqgan.startswith("wikiart")


@pytest.mark.slow
def test_header_time_and_memory_match_the_estimator():
    """The T4 numbers in the headers are what vqclip.preproduction.estimate says (within rounding)."""
    from vqclip.preproduction.estimate import T4, Estimator
    from vqclip.production.render import planned_iterations

    for name in GALLERY:
        cfg = load_config(name)
        m = T4_LINE.search((PRESETS / f"{name}.yaml").read_text(encoding="utf-8"))
        s = Estimator(cfg).step(cfg.size.width, cfg.size.height, None, m.group(4))
        minutes = planned_iterations(cfg) * s.seconds_per_iteration(T4) / 60
        assert float(m.group(5)) == pytest.approx(s.total_gib, abs=0.06), name
        assert float(m.group(3)) == pytest.approx(s.seconds_per_iteration(T4), abs=0.006), name
        assert int(m.group(1)) == round(minutes), name


def test_readme_gallery_lists_every_preset():
    readme = (PRESETS / "README.md").read_text(encoding="utf-8")
    for name in ALL:
        assert f"`{name}`" in readme, f"presets/README.md does not list {name}"
    for name in GALLERY:
        minutes = T4_LINE.search((PRESETS / f"{name}.yaml").read_text(encoding="utf-8")).group(1)
        row = next(line for line in readme.splitlines() if f"`{name}`" in line)
        assert f"~{minutes} min" in row, row


def test_every_preset_is_valid_yaml_with_known_sections():
    for name in ALL:
        data = yaml.safe_load((PRESETS / f"{name}.yaml").read_text(encoding="utf-8"))
        assert set(data) <= {"description", "prompts", "size", "models", "generation", "animation", "output", "post"}
