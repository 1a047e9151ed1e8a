"""The four notebooks: generated from one source, Colab-safe setup, and executed headless in smoke mode.

The executed copies (with their outputs) are left in the test's temporary folder; each notebook's
video is probed. A kernel spec pointing at this interpreter is written for the run, so a clean CI
venv needs only ipykernel and nbclient.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tools.build_notebooks import GITHUB_REPO, NOTEBOOKS, colab_links_markdown, colab_url, notebook_text

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["00_quickstart", "01_pre_production", "02_production", "03_post_production"]


def test_committed_notebooks_are_the_generated_ones():
    """Edit tools/build_notebooks.py and run `python -m tools.build_notebooks`, not the .ipynb files."""
    assert list(NOTEBOOKS) == ORDER
    for name in ORDER:
        committed = (ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
        assert committed == notebook_text(name), f"notebooks/{name}.ipynb is stale; run python -m tools.build_notebooks"


def test_notebooks_are_thin_and_colab_safe():
    for name in ORDER:
        nb = json.loads(notebook_text(name))
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        setup = code[0]
        assert "google.colab" in setup and "-c" in setup and "torch==" in setup  # Colab's torch is pinned, not replaced
        assert "moviepy>=2.2.1" in setup and "USE_DRIVE" in setup and "VQCLIP_SMOKE" in setup
        assert f"github.com/{GITHUB_REPO}" in setup
        assert all(len(c.splitlines()) <= 4 for c in code[1:]), name  # the widgets live in vqclip.ui
        assert "Accordion" not in "".join(code)
        assert colab_url(name) in "".join(nb["cells"][0]["source"])
    assert colab_links_markdown().count("colab-badge.svg") == 4


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernel spec named vqclip-test that runs this interpreter's ipykernel."""
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / "vqclip-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vqclip test", "language": "python",
    }), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "vqclip-test"


def _outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.mark.slow
def test_notebooks_run_headless_in_smoke_mode(kernel, tmp_path, monkeypatch, taming_checkpoints, open_clip_files):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from test_ui import toy_pack_present  # the same tiny-model fallback as the panel tests

    from vqclip.video import probe

    out = tmp_path / "out"
    monkeypatch.setenv("VQCLIP_SMOKE", "1")
    monkeypatch.setenv("VQCLIP_OUT", str(out))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    if not toy_pack_present():
        config, ckpt, _ = taming_checkpoints["vq"]
        monkeypatch.setenv("VQCLIP_SMOKE_SET", f"models.vqgan={{config: {config}, checkpoint: {ckpt}}};"
                           f"models.clip=[{{config: {open_clip_files['config']}, weights: {open_clip_files['weights']}}}]")
    executed = tmp_path / "executed"
    executed.mkdir()
    for name in ORDER:
        nb = nbformat.reads(notebook_text(name), as_version=4)
        client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=180, resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
        nbformat.write(nb, executed / f"{name}.ipynb")
        outs = _outputs(nb)
        assert not [o for o in outs if o.get("output_type") == "error"], name
        text = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
        assert "SMOKE MODE" in text and str(out) in text, text
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs), name
        if name != "01_pre_production":  # the others end with the video inline
            html = outs[-1]["data"]["text/html"]
            assert "<video" in html and "base64" in html, name

    # What they wrote: a render per production notebook, a saved preset, a post piece.
    assert (out / "presets" / "my_preset.yaml").is_file()
    for render_name in ("fast_draft", "my_preset"):
        video = out / "renders" / render_name / "video.mp4"
        info = probe(video)
        assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.n_frames >= 2
    piece = probe(out / "post" / "piece.mp4")
    assert piece.codec == "h264" and piece.n_frames >= 2
