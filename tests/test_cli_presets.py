"""`vqclip presets` shows where each preset lives and copies one to edit; `vqclip --version`."""

from __future__ import annotations

import pytest
import yaml

from vqclip import __version__
from vqclip.cli import main
from vqclip.settings.render import list_presets, load_config


def test_presets_lists_names_and_paths(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, _ in list_presets():
        path = next(line.strip() for line in out.splitlines() if line.strip().endswith(f"/{name}.yaml"))
        assert yaml.safe_load(open(path, encoding="utf-8"))  # the printed path is a readable preset
    assert "vqclip presets copy NAME [DEST]" in out


def test_presets_copy_to_a_file_a_folder_and_never_over_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["presets", "copy", "zoom_tunnel"]) == 0
    copied = tmp_path / "zoom_tunnel.yaml"
    assert load_config(copied).size.width == 576  # a valid preset, the bundled one's content
    assert str(copied.name) in capsys.readouterr().out

    assert main(["presets", "copy", "klee_garden", "mine/"]) == 0  # a folder, made on the way
    assert (tmp_path / "mine" / "klee_garden.yaml").is_file()

    copied.write_text("# my edits\n", encoding="utf-8")
    assert main(["presets", "copy", "zoom_tunnel"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and len(err.splitlines()) == 1
    assert copied.read_text(encoding="utf-8") == "# my edits\n"  # untouched
    assert main(["presets", "copy", "zoom_tunnel", "--force"]) == 0
    assert load_config(copied).size.width == 576


def test_presets_copy_unknown_name_suggests_one(capsys):
    assert main(["presets", "copy", "zoom_tunel"]) == 2
    err = capsys.readouterr().err
    assert "no bundled preset 'zoom_tunel' (did you mean 'zoom_tunnel'?)" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"vqclip {__version__}"
