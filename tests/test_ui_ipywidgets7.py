"""tests/test_ui.py and tests/test_ui_controls.py again under ipywidgets 7.7.1, the version Colab ships.

A throwaway venv gets ``ipywidgets==7.7.1`` from PyPI and sees this environment's packages behind its
own (torch and the rest are not installed twice): ``--system-site-packages`` for the base Python, and a
``.pth`` file that adds this environment's site-packages when it is itself a venv. The venv is kept in the system temp folder, keyed by the Python and
ipywidgets versions, so later runs reuse it. Skipped when PyPI cannot be reached.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

IPYWIDGETS_7 = "7.7.1"
ROOT = Path(__file__).resolve().parents[1]


def _venv() -> Path:
    """A venv with ipywidgets 7.7.1 over this interpreter's packages (built once, then reused)."""
    import hashlib

    tag = f"py{sys.version_info.major}{sys.version_info.minor}-{hashlib.sha256(sys.prefix.encode()).hexdigest()[:10]}"
    venv = Path(tempfile.gettempdir()) / f"vqclip-ipywidgets-{IPYWIDGETS_7}-{tag}"
    python = venv / "bin" / "python"
    marker = venv / "ready"
    if marker.is_file() and python.is_file():
        return python
    import site

    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, capture_output=True)
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True,
                         check=True).stdout.strip()
    # addsitedir (not a bare path) so this environment's own .pth files, editable installs included, apply too
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages())
    Path(own, "zz_vqclip_parent_env.pth").write_text(lines, encoding="utf-8")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"ipywidgets=={IPYWIDGETS_7}"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"could not install ipywidgets=={IPYWIDGETS_7} from PyPI: {proc.stderr.strip().splitlines()[-1:]}")
    marker.write_text("ok")
    return python


@pytest.mark.slow
def test_ui_tests_pass_under_ipywidgets_7():
    python = _venv()
    version = subprocess.run([str(python), "-c", "import ipywidgets, vqclip; print(ipywidgets.__version__)"],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert version == IPYWIDGETS_7
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/test_ui.py", "tests/test_ui_controls.py"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
