"""One owner per concern: no vqclip module reaches into another one's private (``_name``) helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import vqclip

PACKAGE = Path(vqclip.__file__).parent


def _private_uses(path: Path) -> list[str]:
    """``module._name`` uses in ``path`` that import or read a private name of another vqclip module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: dict[str, str] = {}  # local name -> vqclip module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vqclip"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vqclip"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.name}:{node.lineno} reads {modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_helpers():
    uses = [u for p in sorted(PACKAGE.rglob("*.py")) for u in _private_uses(p)]
    assert not uses, "use (or add) a public, documented function instead:\n" + "\n".join(uses)


def test_the_ui_helpers_are_public_and_documented():
    from vqclip.settings.render import read_preset
    from vqclip.models.registry import get_model_info, model_size_text, model_status, packaged_dir

    for fn in (read_preset, model_status, model_size_text, packaged_dir):
        assert fn.__doc__ and "\n" not in fn.__doc__.strip()
    toy = get_model_info("toy")
    assert model_status(toy) == "packaged" and model_size_text(toy).endswith(("kB", "MB"))
    assert (packaged_dir() / "toy_vqgan.yaml").is_file()
    assert read_preset("diver_story")["generation"]["engine"] == "pixels"  # parsed, not validated


def test_the_public_api_is_lazy_and_every_name_resolves():
    import subprocess
    import sys

    code = ("import sys, vqclip; assert 'torch' not in sys.modules and 'vqclip.production' not in sys.modules; "
            "[getattr(vqclip, n) for n in vqclip.__all__]; print(sorted(set(vqclip.__all__) - set(dir(vqclip))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert vqclip.render.__module__ == "vqclip.production.render"
    assert vqclip.load_config("default").generation.engine == "vqgan"
