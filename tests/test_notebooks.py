"""The notebooks: generated from one source, a setup cell that installs as on Colab, executed headless in smoke mode.

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

from tools.build_notebooks import REPOSITORY, NOTEBOOKS, colab_links_markdown, colab_url, notebook_text

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["studio", "00_quickstart", "01_pre_production", "02_production", "03_post_production"]


def test_committed_notebooks_are_the_generated_ones():
    """Edit tools/build_notebooks.py and run `python -m tools.build_notebooks`, not the .ipynb files."""
    assert list(NOTEBOOKS) == ORDER
    for name in ORDER:
        committed = (ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
        assert committed == notebook_text(name), f"notebooks/{name}.ipynb is stale; run python -m tools.build_notebooks"


def test_notebooks_are_thin_and_colab_safe():
    import tomllib

    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert REPOSITORY == url and "your-org" not in url
    for name in ORDER:
        nb = json.loads(notebook_text(name))
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        setup = code[0]
        assert f"git+{url}@main" in setup and "VQCLIP_PIP" in setup and "jupyter-ui-poll" in setup
        # Colab's torch is kept by a constraint on its public version: "2.11.0+cu128" must not be pinned whole
        assert "split('+')[0]" in setup and "torch.__version__}" not in setup
        assert "_render_traceback_" in setup and "check=True" not in setup  # three lines on failure, no traceback
        assert f"USE_DRIVE = {name in ('01_pre_production', '02_production', '03_post_production')}" in setup
        assert 'os.environ["VQCLIP_SMOKE"]' not in setup  # unticking SMOKE and rerunning turns it off again
        assert all(len(c.splitlines()) <= 4 for c in code[1:]), name  # the widgets live in vqclip.ui
        assert "Accordion" not in "".join(code)
        assert colab_url(name) in "".join(nb["cells"][0]["source"])
    assert colab_links_markdown().count("colab-badge.svg") == len(ORDER)
    assert colab_links_markdown() in (ROOT / "README.md").read_text(encoding="utf-8")  # README's links come from here


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
        # the studio is its own runtime with its own folder (its render is named like 01's saved preset)
        monkeypatch.setenv("VQCLIP_OUT", str(tmp_path / "studio" if name == "studio" else out))
        nb = nbformat.reads(notebook_text(name), as_version=4)
        client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=180, resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
        nbformat.write(nb, executed / f"{name}.ipynb")
        outs = _outputs(nb)
        assert not [o for o in outs if o.get("output_type") == "error"], name
        text = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
        assert "SMOKE MODE" in text and str(tmp_path) in text, text
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs), name
        if name not in ("01_pre_production", "studio"):  # the others end with the video inline
            html = outs[-1]["data"]["text/html"]
            assert "<video" in html and "base64" in html, name

    studio = tmp_path / "studio"  # one runtime: the render of the pre-production choices, then the piece made from it
    assert probe(studio / "renders" / "my_preset" / "video.mp4").n_frames >= 2
    assert probe(studio / "post" / "piece.mp4").n_frames >= 2

    # What they wrote: a render per production notebook, a saved preset, a post piece.
    assert (out / "presets" / "my_preset.yaml").is_file()
    for render_name in ("fast_draft", "my_preset"):
        video = out / "renders" / render_name / "video.mp4"
        info = probe(video)
        assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.n_frames >= 2
    piece = probe(out / "post" / "piece.mp4")
    assert piece.codec == "h264" and piece.n_frames >= 2


# --- the setup cell, run as Colab runs it ----------------------------------------------------------


def _wheel_index(tmp_path: Path) -> Path:
    """A wheel built from this checkout in a PEP 503 folder: index/vqclip/vqclip-*.whl."""
    import shutil
    import subprocess

    src = tmp_path / "src"  # build from a copy: the build must not leave build/ or egg-info in the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("vqclip", "presets"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    index = tmp_path / "index"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(index / "vqclip"), str(src)], check=True, capture_output=True, timeout=300)
    return index


def _colab_like_python(tmp_path: Path) -> Path:
    """A venv that sees this environment's packages except vqclip (as Colab has torch but not vqclip)."""
    import site
    import subprocess

    parent = tmp_path / "parent-site"
    parent.mkdir()
    for sp in site.getsitepackages():
        for entry in Path(sp).iterdir():
            if "vqclip" not in entry.name.lower() and not (parent / entry.name).exists():
                (parent / entry.name).symlink_to(entry)
    venv = tmp_path / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    Path(own, "zz_parent.pth").write_text(f"import site; site.addsitedir({str(parent)!r})\n", encoding="utf-8")
    colab = tmp_path / "stand-in" / "google" / "colab"  # google/ stays a namespace package, as on Colab
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text("", encoding="utf-8")
    (colab / "drive.py").write_text("def mount(path):\n    raise RuntimeError('no Drive in this test')\n", encoding="utf-8")
    return python


def _run_setup_cell(python: Path, tmp_path: Path, pip_spec: str, index_url: str):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.reads(notebook_text("studio"), as_version=4)
    setup = nb.cells[1]
    assert 'VQCLIP_PIP = ""' in setup.source
    setup.source = setup.source.replace('VQCLIP_PIP = ""', f'VQCLIP_PIP = "{pip_spec}"')  # as typed into Colab's form
    nb.cells = [setup, nbformat.v4.new_code_cell("import vqclip, torch; print('from', vqclip.__file__); "
                                                 "print(open('/tmp/vqclip-constraints.txt').read())")]
    spec = tmp_path / "jupyter" / "kernels" / "colab-like"
    spec.mkdir(parents=True, exist_ok=True)
    # google.colab is imported before the kernel starts, as on Colab
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-c", "import google.colab; from ipykernel import kernelapp; kernelapp.launch_new_instance()",
                 "-f", "{connection_file}"],
        "display_name": "colab-like", "language": "python",
        "env": {"PYTHONPATH": str(tmp_path / "stand-in"), "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index_url,
                "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": "", "VQCLIP_OUT": str(tmp_path / "out"),
                "OMP_NUM_THREADS": "1"},
    }), encoding="utf-8")
    run_dir = tmp_path / "content"  # not a clone: the cell must install from VQCLIP_PIP
    run_dir.mkdir(exist_ok=True)
    client = nbclient.NotebookClient(nb, kernel_name="colab-like", timeout=300, allow_errors=True,
                                     resources={"metadata": {"path": str(run_dir)}})
    client.execute()
    return nb


@pytest.mark.slow
def test_setup_cell_installs_as_on_colab_and_fails_in_three_lines(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    index = _wheel_index(tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(index))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        python = _colab_like_python(tmp_path)
        url = f"http://127.0.0.1:{server.server_address[1]}/"

        nb = _run_setup_cell(python, tmp_path, "vqclip==0.1.0", url)
        outs = _outputs(nb)
        assert not [o for o in outs if o.get("output_type") == "error"], outs
        text = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
        assert "installing vqclip==0.1.0" in text and "vqclip: outputs in" in text, text
        assert "other stage notebooks" in text  # on Colab without Drive, the panel says where outputs live
        assert f"from {tmp_path / 'colab-venv'}" in text, text  # the wheel was installed, not this checkout
        import torch, torchvision

        # Colab's torch kept: constrained to its public version (a "+cu128" tag would not resolve)
        assert f"torch=={torch.__version__.split('+')[0]}\n" in text and "+" not in text.split("torch==")[1].split("\n")[0]
        assert f"torchvision=={torchvision.__version__.split('+')[0]}" in text

        nb = _run_setup_cell(python, tmp_path, "vqclip==99.0", url)
        errors = [o for o in nb.cells[0].outputs if o.get("output_type") == "error"]
        assert len(errors) == 1 and errors[0]["ename"] == "SetupFailed"
        lines = errors[0]["traceback"]
        assert len(lines) == 3 and all(len(line) < 300 for line in lines), lines  # three short lines, no traceback
        assert lines[0] == "vqclip setup: could not install vqclip==99.0"
        assert lines[1].startswith("why: ERROR") and "99.0" in lines[1] and lines[2].startswith("what to do:")
    finally:
        server.shutdown()
