"""CLIP perceptor: a tiny open_clip model from local config + weights, through load_perceptor."""

from __future__ import annotations

import json
import os

import open_clip
import pytest
import torch

from vqclip.errors import ConfigError, ModelError
from vqclip.models import registry
from vqclip.models.clip import Perceptor, load_perceptor


@pytest.fixture(scope="module")
def perceptor(open_clip_files):
    return load_perceptor({"config": open_clip_files["config"], "weights": open_clip_files["weights"]})


def test_local_config_and_weights_load_frozen_with_the_saved_weights(perceptor, open_clip_files):
    assert isinstance(perceptor, Perceptor)
    assert perceptor.input_size == 32 and perceptor.name == "local:tiny-clip" and perceptor.embed_dim == 16
    assert not perceptor.model.training and not any(p.requires_grad for p in perceptor.parameters())
    saved = torch.load(open_clip_files["weights"], weights_only=True)
    for key, value in perceptor.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_encode_text_shapes_and_normalisation(perceptor):
    emb = perceptor.encode_text(["a red circle", "a blue square", "sunset over the sea"])
    assert emb.shape == (3, 16) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1])


def test_encode_image_applies_the_models_mean_std_and_passes_gradient(perceptor):
    cfg = open_clip.get_model_preprocess_cfg(perceptor.model)
    assert torch.allclose(perceptor.mean.flatten(), torch.tensor(cfg["mean"]))
    assert torch.allclose(perceptor.std.flatten(), torch.tensor(cfg["std"]))
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    emb = perceptor.encode_image(x)
    assert emb.shape == (2, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    # same as normalising by hand and calling the raw model
    raw = perceptor.model.encode_image((x.detach() - perceptor.mean) / perceptor.std)
    assert torch.allclose(emb.detach(), torch.nn.functional.normalize(raw, dim=-1), atol=1e-5)
    (emb @ perceptor.encode_text(["a red circle"]).T).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_wrong_image_size_names_the_allowed_shape(perceptor):
    with pytest.raises(ConfigError, match=r"shape \(1, 3, 64, 64\); allowed: \(B, 3, 32, 32\) in \[0, 1\]"):
        perceptor.encode_image(torch.rand(1, 3, 64, 64))


def test_name_plus_weights_spec(perceptor, open_clip_files):
    # {"name": arch, "weights": file}: an architecture open_clip knows (a user's custom one is added
    # with open_clip's own add_model_config) with a local weights file
    open_clip.add_model_config(open_clip_files["config"])
    assert "tiny-clip" in open_clip.list_models()
    p = load_perceptor({"name": "tiny-clip", "weights": open_clip_files["weights"]})
    assert p.input_size == 32 and p.name == "tiny-clip/tiny-clip.pt"
    assert torch.allclose(p.encode_text(["a red circle"]), perceptor.encode_text(["a red circle"]))


def test_bad_specs_name_what_is_allowed(open_clip_files, tmp_path):
    with pytest.raises(ConfigError, match="'ViT-Q-99' is not an open_clip architecture"):
        load_perceptor("ViT-Q-99/openai")
    with pytest.raises(ConfigError, match="pretrained weights 'nonsense' are not known for ViT-B-32; allowed: .*openai"):
        load_perceptor("ViT-B-32/nonsense")
    with pytest.raises(ConfigError, match="pretrained weights '' are not known"):
        load_perceptor("ViT-B-32")
    with pytest.raises(ConfigError, match="allowed keys"):
        load_perceptor({"config": open_clip_files["config"]})
    with pytest.raises(ModelError, match="CLIP weights file .* does not exist"):
        load_perceptor({"config": open_clip_files["config"], "weights": tmp_path / "none.pt"})
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"model_cfg": json.loads(open_clip_files["config"].read_text())}))
    with pytest.raises(ConfigError, match="local-dir:"):
        load_perceptor({"config": wrapped, "weights": open_clip_files["weights"]})


def test_same_file_name_different_configs_load_side_by_side(open_clip_files, tmp_path):
    import open_clip

    builtin = open_clip.get_model_config("ViT-B-32")
    first = tmp_path / "a" / "ViT-B-32.json"  # named like a built-in model: must not shadow it
    second = tmp_path / "b" / "ViT-B-32.json"  # same name, another architecture
    cfg = json.loads(open_clip_files["config"].read_text())
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text(json.dumps(cfg))
    second.write_text(json.dumps({**cfg, "embed_dim": 24}))
    p1 = load_perceptor({"config": first, "weights": open_clip_files["weights"]})
    with pytest.raises(ModelError, match="do not fit"):  # really built from the second config
        load_perceptor({"config": second, "weights": open_clip_files["weights"]})
    p1_again = load_perceptor({"config": first, "weights": open_clip_files["weights"]})
    assert p1.encode_image(torch.rand(1, 3, 32, 32)).shape == p1_again.encode_image(torch.rand(1, 3, 32, 32)).shape == (1, 16)
    assert open_clip.get_model_config("ViT-B-32") == builtin


def test_weights_that_do_not_fit_the_config(open_clip_files, tmp_path):
    cfg = json.loads(open_clip_files["config"].read_text())
    cfg["embed_dim"] = 24
    other = tmp_path / "tiny-clip-24.json"
    other.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="do not fit local:tiny-clip-24"):
        load_perceptor({"config": other, "weights": open_clip_files["weights"]})


def test_toy_loads_packaged_files_or_says_what_is_missing(monkeypatch, open_clip_files, tmp_path):
    monkeypatch.setattr(registry, "packaged_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match=r"model 'toy' ships inside vqclip, but .*toy_clip.json and .*toy_clip.pt are missing; rebuild the toy pack .*`python -m tools.train_toy_clip`"):
        load_perceptor("toy")
    (tmp_path / "toy_clip.json").write_text(open_clip_files["config"].read_text())
    state = {k: v.half() for k, v in torch.load(open_clip_files["weights"], weights_only=True).items()}
    torch.save(state, tmp_path / "toy_clip.pt")  # the toy pack stores fp16
    p = load_perceptor("toy")
    assert p.name == "toy" and p.encode_image(torch.rand(1, 3, 32, 32)).shape == (1, 16)
    assert next(p.model.parameters()).dtype == torch.float32


# --- QuickGELU: the activation the weights were trained with ------------------------------------


@pytest.mark.parametrize("spec, quick", [
    ("ViT-B-32/openai", True), ("ViT-B-16/openai", True), ("RN50/openai", True),  # registry entries
    ("ViT-B-32/laion2b_s34b_b79k", False),  # registry, LAION: plain GELU
    ("RN101/openai", True), ("ViT-B-16/laion2b_s34b_b88k", False),  # open_clip tags the registry does not list
])
def test_each_perceptor_is_built_with_the_activation_of_its_weights(spec, quick):
    import warnings

    from open_clip.transformer import QuickGELU

    from vqclip.models.clip import build_architecture, uses_quick_gelu

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_architecture(spec)  # meta device: no weights, no network
    assert uses_quick_gelu(model) is quick
    assert any(isinstance(m, torch.nn.GELU) for m in model.modules()) is (not quick)
    assert not [w for w in caught if "QuickGELU" in str(w.message)]
    assert QuickGELU  # the class the check looks for exists in this open_clip


def test_loading_an_openai_tag_emits_no_quickgelu_mismatch_warning(monkeypatch):
    """The real load path with a tag: open_clip's own check must find the model and the tag agree."""
    import warnings

    import open_clip.factory as factory

    from vqclip.models.clip import _create, uses_quick_gelu

    monkeypatch.setattr(factory, "download_pretrained", lambda cfg, cache_dir=None: "weights.bin")
    monkeypatch.setattr(factory, "load_checkpoint", lambda *a, **k: {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _create("RN50", "openai", "meta", None, "RN50/openai", quick_gelu=True)
        plain = _create("RN50", "openai", "meta", None, "RN50/openai", quick_gelu=False)
    mismatch = [str(w.message) for w in caught if "QuickGELU mismatch" in str(w.message)]
    assert uses_quick_gelu(model) and len(mismatch) == 1  # only the deliberately wrong build warns
    assert not uses_quick_gelu(plain)


def test_a_local_spec_states_openai_weights_with_quick_gelu(open_clip_files):
    from vqclip.models.clip import uses_quick_gelu
    from vqclip.models.registry import resolve_model

    spec = {"config": open_clip_files["config"], "weights": open_clip_files["weights"]}
    assert not uses_quick_gelu(load_perceptor(spec).model)
    assert uses_quick_gelu(load_perceptor({**spec, "quick_gelu": True}).model)
    assert resolve_model({"name": "ViT-B-32-quickgelu", "weights": "w.pt"}, "clip").options["quick_gelu"] is True
    with pytest.raises(ConfigError, match="quick_gelu 'yes' is not allowed; give true"):
        load_perceptor({**spec, "quick_gelu": "yes"})


def test_weights_that_are_not_a_plain_state_dict_are_refused_in_one_line(open_clip_files, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"visual.proj": Evil()}, protocol=2))
    with pytest.raises(ModelError) as err:
        load_perceptor({"config": open_clip_files["config"], "weights": bad})
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "not a plain tensor state dict" in msg
    assert "weights_only" not in msg and "arbitrary code" not in msg


def test_a_refused_open_clip_download_does_not_repeat_torchs_unsafe_advice(monkeypatch):
    advice = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` argument in "
              "`torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will likely "
              "succeed, but it can result in arbitrary code execution.\nWeightsUnpickler error: Unsupported global: GLOBAL "
              "__main__.Evil was not an allowed global by default.")

    def refuse(*args, **kwargs):
        raise RuntimeError(advice)

    monkeypatch.setattr(open_clip, "create_model", refuse)
    with pytest.raises(ModelError) as err:
        load_perceptor("RN101/openai")  # a tag open_clip downloads itself
    msg = str(err.value)
    assert "not a plain tensor state dict (its pickle names __main__.Evil)" in msg
    assert "weights_only" not in msg and "\n" not in msg


def test_weights_whose_name_hides_their_format_are_refused_in_one_line(open_clip_files, tmp_path):
    from safetensors.torch import save_file

    state = torch.load(open_clip_files["weights"], weights_only=True)
    save_file(state, str(tmp_path / "w.pt"))  # safetensors bytes under a .pt name: open_clip would misread it
    with pytest.raises(ModelError, match=r"'.*w.pt' hold safetensors but are named .pt; rename the file to end in .safetensors"):
        load_perceptor({"config": open_clip_files["config"], "weights": tmp_path / "w.pt"})
    (tmp_path / "w.pt").rename(tmp_path / "w.safetensors")
    p = load_perceptor({"config": open_clip_files["config"], "weights": tmp_path / "w.safetensors"})
    assert p.encode_image(torch.rand(1, 3, 32, 32)).shape == (1, 16)
