"""Diffusion components: local diffusers folders, safetensors only, the missing-extra error."""

from __future__ import annotations

import importlib.util
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from vqclip.errors import ModelError

diffusers = pytest.importorskip("diffusers")

from tests.helpers_diffusion import dummy_motion_adapter_folder, dummy_sd_folder  # noqa: E402


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return dummy_sd_folder(tmp_path_factory.mktemp("sd") / "model")


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    from vqclip.models.diffusion import require_diffusers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    with pytest.raises(ModelError) as err:
        require_diffusers("t2v_zero")
    msg = str(err.value)
    assert "\n" not in msg and "'t2v_zero'" in msg and 'pip install "vqclip[diffusion]"' in msg and "diffusers" in msg


def test_local_folder_loads_without_unpickling_anything(sd_folder, monkeypatch):
    from vqclip.models.diffusion import load_sd_components, resolve_diffusion_folder

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    folder = resolve_diffusion_folder({"path": str(sd_folder)})
    c = load_sd_components(folder)
    assert c.unet.config.cross_attention_dim == 16 and c.vae.config.latent_channels == 4
    assert c.text_encoder.config.hidden_size == 16 and c.scheduler_config["beta_schedule"] == "scaled_linear"
    assert c.tokenizer("ab").input_ids == [0, 2, 5, 1]  # <start> a b</w> <end>
    # the weights are the saved ones, not a fresh random init
    saved = diffusers.UNet2DConditionModel.from_pretrained(sd_folder, subfolder="unet", use_safetensors=True)
    assert all(torch.equal(a, b) for a, b in zip(c.unet.state_dict().values(), saved.state_dict().values()))


def test_motion_adapter_folder_loads(tmp_path):
    from vqclip.models.diffusion import load_motion_adapter

    adapter = load_motion_adapter(dummy_motion_adapter_folder(tmp_path / "adapter"))
    assert tuple(adapter.config.block_out_channels) == (8, 16)


def test_pickled_weights_are_refused_not_loaded(sd_folder, tmp_path):
    from vqclip.models.diffusion import load_sd_components

    bad = tmp_path / "model"
    shutil.copytree(sd_folder, bad)
    for f in (bad / "unet").glob("*.safetensors"):
        f.unlink()
    (bad / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(ModelError, match=r"unet' has no .safetensors weights; vqclip never loads pickled"):
        load_sd_components(bad)


def test_folder_without_a_part_names_it(sd_folder, tmp_path):
    from vqclip.models.diffusion import load_sd_components, resolve_diffusion_folder

    bad = tmp_path / "model"
    shutil.copytree(sd_folder, bad)
    shutil.rmtree(bad / "tokenizer")
    with pytest.raises(ModelError, match=r"has no tokenizer/ folder \(the CLIP tokenizer\)"):
        load_sd_components(bad)
    with pytest.raises(ModelError, match=r"models.diffusion.path: '.*nowhere' is not a folder"):
        resolve_diffusion_folder({"path": str(tmp_path / "nowhere")})
    with pytest.raises(ModelError, match=r"models.motion_adapter: \{'file': 'x'\} is not a model"):
        resolve_diffusion_folder({"file": "x"}, kind="motion_adapter")


def test_a_registry_name_loads_the_folder_its_downloaded_files_form(sd_folder, tmp_path, monkeypatch):
    from vqclip.models import registry

    if not hasattr(registry, "resolve_model"):
        pytest.skip("this build's registry has no data-file entries")
    from vqclip.models.diffusion import load_sd_components, resolve_diffusion_folder

    def fake_download(info, cache_dir=None, callback=None):  # the network, mocked: copy the files where they belong
        dest = registry.model_dir(info, cache_dir)
        for f in info.files:
            src = sd_folder / f.filename.replace(".fp16", "")
            (dest / f.filename).parent.mkdir(parents=True, exist_ok=True)
            if src.is_file():
                shutil.copy(src, dest / f.filename)
            else:  # files the tiny model does not have (special_tokens_map.json)
                (dest / f.filename).write_text("{}")
        return registry.file_paths(info, cache_dir)

    monkeypatch.setattr(registry, "download_model", fake_download)
    folder = resolve_diffusion_folder("stable-diffusion-v1-5", cache_dir=tmp_path)
    assert folder == tmp_path / "diffusion" / "stable-diffusion-v1-5"
    c = load_sd_components(folder)  # the fp16-variant file names load too
    assert c.unet.config.cross_attention_dim == 16


def test_the_packaged_toy_resolves_to_its_folder():
    import vqclip.toy
    from vqclip.models import registry
    from vqclip.models.diffusion import resolve_diffusion_folder

    toy = Path(vqclip.toy.__file__).parent / "weights" / "diffusion"
    if not hasattr(registry, "resolve_model") or not (toy / "motion_adapter" / "config.json").is_file():
        pytest.skip("needs the data-file registry and the built toy diffusion pack")

    folder = resolve_diffusion_folder("toy")
    assert (folder / "unet" / "config.json").is_file() and folder.name == "diffusion"
    assert resolve_diffusion_folder("toy", kind="motion_adapter") == folder / "motion_adapter"
