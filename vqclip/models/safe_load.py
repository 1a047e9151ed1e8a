"""Load taming / Lightning `.ckpt` files without running any code stored in their pickles.

Why a restricted unpickler (handed to `torch.load` as its `pickle_module`) and not torch's own
`weights_only=True` with `add_safe_globals`: the weights-only loader refuses every global it was
not told about in advance, and published checkpoints carry classes we cannot list up front
(Lightning callbacks keyed by class object, hparams Namespaces, numpy scalars, whatever the
trainer of a community mirror had). Here the allow-list is just as strict about what may be
*called* — only tensor/storage rebuilders and plain containers resolve to real objects — but every
other class becomes an inert placeholder, so the file still loads and we keep its `state_dict`.
A reference to something that runs code (os.system, subprocess, builtins.eval, ...) is refused
with `UnsafeCheckpointError` before the pickle can call it.

Both torch's zip format (torch >= 1.6) and the legacy format go through the same unpickler.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from vqclip.errors import ModelError, UnsafeCheckpointError

__all__ = ["safe_load_checkpoint", "load_weights", "weights_refusal", "Placeholder", "RestrictedPickleModule", "LightningPickleModule"]

# A pickle may call bytes(n)/bytearray(n) to allocate n zero bytes; real checkpoints never need more than
# a few MiB that way (their tensors arrive through storages), so a larger request is refused, not run.
MAX_PICKLE_ALLOCATION = 16 * 2**20

# Modules whose functions run code, touch processes, files or the network, or unpickle again.
# A checkpoint has no business naming any of them; we refuse rather than silently placeholder.
_DANGEROUS_MODULES = frozenset(
    """os posix nt subprocess sys shutil importlib runpy pty socket ctypes code codeop pickle
    _pickle marshal types multiprocessing webbrowser pdb commands platform operator functools
    timeit asyncio http urllib requests signal threading _thread _posixsubprocess ssl tempfile
    glob pathlib io _io shelve dbm sqlite3 inspect gc weakref copyreg _codecs codecs
    torch.hub torch.jit torch._C torch.ops torch.serialization torch.package numpy.testing
    numpy.lib.npyio numpy.f2py""".split()
)
# builtins that are plain data types; any other builtin (eval, exec, getattr, open, ...) is refused.
_SAFE_BUILTINS = {
    "set": set,
    "frozenset": frozenset,
    "slice": slice,
    "complex": complex,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "object": object,
}


def _bounded(kind: type) -> Any:
    def build(source: Any = b"", *args: Any) -> Any:
        if isinstance(source, int) and source > MAX_PICKLE_ALLOCATION:
            raise UnsafeCheckpointError(
                f"refused to load: the checkpoint's pickle asks {kind.__name__}({source}) to allocate {source / 2**30:.1f} GiB; "
                "a checkpoint never needs that (nothing was allocated)"
            )
        return kind(source, *args)

    return build


_SAFE_BUILTINS.update({"bytes": _bounded(bytes), "bytearray": _bounded(bytearray)})


class Placeholder:
    """An inert stand-in for a class the checkpoint names but vqclip does not rebuild."""

    _origin = "?"  # "module.Name" of the class it replaces (set on each generated subclass)

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        obj = super().__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["kwargs"] = kwargs
        obj.__dict__["state"] = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ kept the arguments; nothing else happens

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<placeholder for {self._origin}>"


def _placeholder_class(module: str, name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (Placeholder,), {"_origin": f"{module}.{name}", "__module__": "vqclip.placeholder"})


def _is_dangerous(module: str, name: str) -> bool:
    root = module.split(".")
    for i in range(1, len(root) + 1):
        if ".".join(root[:i]) in _DANGEROUS_MODULES:
            return True
    if module in ("builtins", "__builtin__"):
        return name not in _SAFE_BUILTINS  # range is out too: list(range(10**12)) would only allocate
    return name.startswith("__") and name not in ("__newobj__",)


# --- the few callables a tensor checkpoint needs; wrappers drop pickled hooks so nothing runs later


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, collections.OrderedDict(), metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, collections.OrderedDict(), dtype, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks=None):
    return torch.nn.Parameter(data, requires_grad)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks=None, state=None):
    return torch.nn.Parameter(data, requires_grad)  # attribute state dropped: only the values matter


def _rebuild_from_type_v2(func, new_type, args, state):
    # torch uses this for tensor subclasses; we only ever want the plain tensor back.
    if func not in _TENSOR_CALLABLES:
        raise UnsafeCheckpointError(f"checkpoint asks to rebuild a tensor with {func!r}; only torch's tensor rebuilders are allowed")
    return func(*args)


def _reconstructor(cls, base, state):
    # protocol 0/1 object rebuild (copyreg._reconstructor), limited to placeholders and plain types
    if isinstance(cls, type) and issubclass(cls, Placeholder):
        return cls(state)
    if cls in (collections.OrderedDict, dict, list, set) and base in (object, dict, list, set):
        obj = base.__new__(cls) if base is not object else cls()
        if state is not None and base is not object:
            base.__init__(obj, state)
        return obj
    raise UnsafeCheckpointError(f"checkpoint asks copyreg._reconstructor to build {cls!r} from {base!r}; only plain containers are allowed")


_TENSOR_CALLABLES = frozenset(
    {_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_parameter_with_state, torch._utils._rebuild_tensor}
)


def _allowed_globals() -> dict[str, Any]:
    allowed: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "collections.defaultdict": collections.defaultdict,
        "collections.Counter": collections.Counter,
        "torch._utils._rebuild_tensor": torch._utils._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "copy_reg._reconstructor": _reconstructor,
        "copyreg._reconstructor": _reconstructor,
        # Tensor/storage *classes* are left out on purpose: storages arrive through torch's own
        # persistent_load, and a pickle that calls torch.Tensor(...) could only allocate memory.
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.serialization._get_layout": torch.serialization._get_layout,
        "_codecs.encode": _latin1_encode,  # how protocol 2 stores bytes
    }
    for dtype in {v for v in vars(torch).values() if isinstance(v, torch.dtype)}:
        allowed[str(dtype)] = dtype  # "torch.float32"
    for layout in (torch.strided, torch.sparse_coo):
        allowed[str(layout)] = layout
    for name, obj in _SAFE_BUILTINS.items():
        allowed[f"builtins.{name}"] = obj
        allowed[f"__builtin__.{name}"] = obj
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise UnsafeCheckpointError(f"checkpoint asks _codecs.encode for encoding {encoding!r}; only latin1/utf-8/ascii are allowed")
    return text.encode(encoding)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; everything else becomes a Placeholder subclass."""

    def __init__(self, file, *args: Any, **kwargs: Any) -> None:
        super().__init__(file, *args, **kwargs)
        self._allowed = _allowed_globals()
        self._placeholders: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key in self._allowed:
            return self._allowed[key]
        if _is_dangerous(module, name):
            raise UnsafeCheckpointError(
                f"refused to load: the checkpoint's pickle references {key}, which could run code; "
                "only tensors and plain containers are allowed (nothing was executed)"
            )
        if key not in self._placeholders:
            self._placeholders[key] = _placeholder_class(module, name)
        return self._placeholders[key]


class RestrictedPickleModule:
    """A `pickle_module` for torch.load: the restricted Unpickler plus the `load` torch calls."""

    __name__ = "vqclip_restricted_pickle"
    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file, **kwargs: Any) -> Any:
        """Unpickle one object from an open file with the restricted rules."""
        return _RestrictedUnpickler(file, **kwargs).load()


def safe_load_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict:
    """Load a taming/Lightning `.ckpt` (zip or legacy format) on CPU without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint file {str(path)!r} does not exist; give the path of a taming .ckpt file")
    try:
        # weights_only=False is what lets torch use our pickle_module; the restriction is ours.
        # mmap (zip format only) lets a download be verified without reading gigabytes into RAM
        use_mmap = bool(mmap) and zipfile.is_zipfile(path)
        obj = torch.load(path, map_location="cpu", pickle_module=RestrictedPickleModule, weights_only=False, mmap=use_mmap)
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ModelError(
            f"checkpoint {str(path)!r} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {exc}); "
            "it may be truncated or not a .ckpt file — delete it and download again"
        ) from exc
    if not isinstance(obj, dict):
        raise ModelError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a dict; expected a taming/Lightning checkpoint dict with 'state_dict'")
    return obj


# --- writing: a pickle_module for torch.save that can name classes we never import


class _GlobalRefPickler(pickle._Pickler):  # the pure-Python pickler, so save_global can be extended
    """Pickles a `pickled_as` stub as a plain GLOBAL reference to the module/name it stands for."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        ref = getattr(obj, "__dict__", {}).get("pickled_as") if isinstance(obj, type) else None
        if ref is None:
            return super().save_global(obj, name)
        module, qualname = ref
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + module.encode("utf-8") + b"\n" + qualname.encode("utf-8") + b"\n")
        self.memoize(obj)


class LightningPickleModule:
    """A `pickle_module` for torch.save whose Pickler writes `pickled_as` stubs as real class refs."""

    __name__ = "vqclip_lightning_pickle"
    Pickler = _GlobalRefPickler
    Unpickler = pickle.Unpickler

    @staticmethod
    def dump(obj: Any, file, protocol: int | None = None, **kwargs: Any) -> None:
        """Pickle one object with the stub-aware pickler."""
        _GlobalRefPickler(file, protocol, **kwargs).dump(obj)

    @staticmethod
    def dumps(obj: Any, protocol: int | None = None) -> bytes:
        """Pickle one object to bytes with the stub-aware pickler."""
        buf = io.BytesIO()
        _GlobalRefPickler(buf, protocol).dump(obj)
        return buf.getvalue()


# --- plain weight files (CLIP, CycleGAN, metric networks): tensors only --------------------------


def weights_refusal(path: Path, what: str, exc: BaseException) -> ModelError:
    """The one-line ModelError for a weights file torch's weights-only loader refused (without torch's unsafe advice)."""
    # torch's message recommends weights_only=False, the one unsafe step; keep only its reason
    match = re.search(r"Unsupported (?:global|class)\W*(?:GLOBAL\s+)?([A-Za-z_][\w.]*)", str(exc))
    reason = f"its pickle names {match.group(1)}" if match else "its pickle holds more than tensors"
    return ModelError(
        f"{what} {str(path)!r} is not a plain tensor state dict ({reason}); vqclip loads weights only as "
        "safetensors or a torch.save(model.state_dict()) file — re-save it as one, or download it again"
    )


def load_weights(path: str | os.PathLike, what: str = "weights file") -> dict[str, torch.Tensor]:
    """A state dict of tensors from safetensors or a plain torch file, never running pickled code; one-line ModelError otherwise."""
    from vqclip.models.download import is_safetensors

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {str(path)!r} does not exist; give the path of a .safetensors/.pt/.bin state dict")
    try:
        if is_safetensors(path):
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        raise weights_refusal(path, what, exc) from None
    except MemoryError:
        raise ModelError(f"{what} {str(path)!r} asks for more memory than this machine has; it is not a usable weights file") from None
    except (RuntimeError, EOFError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"{what} {str(path)!r} could not be read ({type(exc).__name__}: {first}); it may be truncated — delete it and download again") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ModelError(f"{what} {str(path)!r} holds a {type(obj).__name__}, not a state dict of tensors")
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj
