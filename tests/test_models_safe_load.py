"""safe_load_checkpoint: tensors come back, unknown classes become placeholders, code never runs."""

from __future__ import annotations

import builtins
import collections
import os
import subprocess

import pytest
import torch

from vqclip.errors import ModelError, UnsafeCheckpointError
from vqclip.models.safe_load import LightningPickleModule, Placeholder, safe_load_checkpoint


class _RunsOnReduce:
    """Pickles as `func(*args)`: what a crafted checkpoint would ask the unpickler to call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class WritesMarkerWhenBuilt:
    """A class whose own code would write a marker file if the unpickler ever ran it."""

    def __init__(self, marker):
        with open(marker, "w") as fh:
            fh.write("ran")

    def __reduce__(self):
        return WritesMarkerWhenBuilt, (self.marker,)

    def __setstate__(self, state):
        open(state["marker"], "w").close()


def _save(obj, path, legacy):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize(
    "make_payload",
    [
        lambda m: _RunsOnReduce(os.system, f"touch {m}"),
        lambda m: _RunsOnReduce(subprocess.call, ["touch", str(m)]),
        lambda m: _RunsOnReduce(builtins.eval, f"open({str(m)!r}, 'w')"),
        lambda m: _RunsOnReduce(builtins.exec, f"open({str(m)!r}, 'w')"),
    ],
    ids=["os.system", "subprocess.call", "eval", "exec"],
)
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, legacy, make_payload):
    marker = tmp_path / "PWNED"
    path = _save({"state_dict": {"w": torch.ones(2)}, "hparams": make_payload(marker)}, tmp_path / "evil.ckpt", legacy)
    with pytest.raises(UnsafeCheckpointError, match="could run code.*nothing was executed"):
        safe_load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tensors_and_containers_come_back_and_other_classes_are_inert(tmp_path, legacy):
    marker = tmp_path / "RAN"
    obj = WritesMarkerWhenBuilt.__new__(WritesMarkerWhenBuilt)
    obj.marker = str(marker)
    state = collections.OrderedDict(w=torch.randn(3, 4), i=torch.arange(5), h=torch.ones(2, dtype=torch.float16))
    data = {"state_dict": state, "obj": obj, "misc": [1, 2.5, "x", (3, 4), {5}, None, b"raw"], "size": torch.Size([2, 3])}
    path = _save(data, tmp_path / "ok.ckpt", legacy)
    loaded = safe_load_checkpoint(path)
    assert not marker.exists()
    assert isinstance(loaded["state_dict"], collections.OrderedDict)
    for key, value in state.items():
        assert torch.equal(loaded["state_dict"][key], value) and loaded["state_dict"][key].dtype == value.dtype
    assert loaded["misc"] == [1, 2.5, "x", (3, 4), {5}, None, b"raw"]
    assert loaded["size"] == torch.Size([2, 3])
    assert isinstance(loaded["obj"], Placeholder)
    assert type(loaded["obj"])._origin.endswith("WritesMarkerWhenBuilt")


def test_lightning_pickle_module_writes_class_references_without_importing_them(tmp_path):
    stub = type("ModelCheckpoint", (), {"pickled_as": ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")})
    path = tmp_path / "cb.ckpt"
    torch.save({"callbacks": {stub: {"best_model_score": torch.tensor(0.1)}}}, path, pickle_module=LightningPickleModule)
    with pytest.raises(Exception, match="pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"):
        torch.load(path, weights_only=True)
    (key,) = safe_load_checkpoint(path)["callbacks"]
    assert key._origin == "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"


def test_unreadable_files_raise_model_error(tmp_path):
    good = _save({"state_dict": {"w": torch.ones(1000)}}, tmp_path / "good.ckpt", legacy=False)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ModelError, match="could not be read"):
        safe_load_checkpoint(truncated)
    (tmp_path / "text.ckpt").write_text("model:\n  target: x\n")
    with pytest.raises(ModelError, match="could not be read"):
        safe_load_checkpoint(tmp_path / "text.ckpt")
    with pytest.raises(ModelError, match="does not exist"):
        safe_load_checkpoint(tmp_path / "missing.ckpt")
    _save([torch.ones(1)], tmp_path / "list.ckpt", legacy=False)
    with pytest.raises(ModelError, match="holds a list, not a dict"):
        safe_load_checkpoint(tmp_path / "list.ckpt")


class _Alloc:
    def __init__(self, kind, n):
        self.kind, self.n = kind, n

    def __reduce__(self):
        return (self.kind, (self.n,))


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_pickle_asking_for_a_huge_allocation_is_refused_before_it_allocates(tmp_path, kind):
    path = tmp_path / "bomb.ckpt"
    torch.save({"state_dict": {}, "x": _Alloc(kind, 4_000_000_000)}, path)  # saving does not allocate; loading would
    with pytest.raises(UnsafeCheckpointError, match=rf"asks {kind.__name__}\(4000000000\) to allocate 3.7 GiB"):
        safe_load_checkpoint(path)
    torch.save({"state_dict": {}, "x": _Alloc(kind, 16)}, path)  # small: fine
    assert safe_load_checkpoint(path)["x"] == kind(16)


def test_load_weights_reads_safetensors_and_plain_state_dicts_only(tmp_path):
    from safetensors.torch import save_file

    from vqclip.models.safe_load import load_weights

    state = {"a.weight": torch.randn(3, 2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        got = load_weights(tmp_path / name)
        assert list(got) == ["a.weight"] and torch.equal(got["a.weight"], state["a.weight"])
    torch.save({"a": _Alloc(bytes, 4_000_000_000)}, tmp_path / "bomb.pt")
    with pytest.raises(ModelError, match=r"'.*bomb.pt' is not a plain tensor state dict \(its pickle names .*bytes\)"):
        load_weights(tmp_path / "bomb.pt", "CLIP weights")
    (tmp_path / "half.pt").write_bytes((tmp_path / "w.pt").read_bytes()[:200])
    with pytest.raises(ModelError, match="could not be read .* truncated"):
        load_weights(tmp_path / "half.pt")
