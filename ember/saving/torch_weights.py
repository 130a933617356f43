"""PyTorch weights without PyTorch: read ``.safetensors`` and ``torch.save`` zip checkpoints, write safetensors.

A ``.pt``/``.pth`` file (``torch.save`` since PyTorch 1.6) is a zip holding ``<name>/data.pkl``, one
``<name>/data/<key>`` file per storage and ``<name>/byteorder``. The pickle is read by an unpickler that
knows only the few globals a ``state_dict`` needs (``collections.OrderedDict``, ``torch._utils``'s tensor
rebuilders and the ``torch.*Storage`` types), each resolved to an Ember stand-in that builds a NumPy array;
any other global (``os.system``, a model class...) raises :class:`UnsafeWeightsError` before anything runs.

>>> import ember, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
>>> net = ember.nn.Linear(3, 2)
>>> save_torch_state_dict(net, path)
>>> sorted(load_torch_state_dict(path))
['bias', 'weight']
>>> load_torch_weights(ember.nn.Linear(3, 2), path)
<All keys matched successfully>
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy

from ..nn.module import _IncompatibleKeys
from ..tensor import Tensor

__all__ = ["UnsafeWeightsError", "load_torch_state_dict", "load_torch_weights", "save_torch_state_dict"]


class UnsafeWeightsError(ValueError):
    """A checkpoint's pickle names a global other than the tensors and containers a ``state_dict`` needs."""


# ---------------------------------------------------------------- stand-ins for the globals a state_dict names
_STORAGES = {"FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bf16",
             "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
             "ByteStorage": "u1", "BoolStorage": "b1"}


class _StandIn:
    """Base of the stand-ins: a pickle's BUILD opcode may not set their state."""

    __slots__ = ()

    def __setstate__(self, state):
        raise ValueError(f"the pickle tries to set the state of {self!r:.60}")


class _Call(_StandIn):
    """A fresh wrapper around an allowed function per lookup, so a pickle can't change the function itself."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


class _StorageType(_StandIn):
    """Stands for ``torch.FloatStorage`` & co.: only its element type is used."""

    __slots__ = ("name", "code")

    def __init__(self, name: str):
        self.name, self.code = name, _STORAGES[name]

    @property
    def itemsize(self) -> int:
        return 2 if self.code == "bf16" else numpy.dtype(self.code).itemsize


class _Storage(_StandIn):
    """A storage read from the zip: a flat NumPy array."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


class _Tensor(_StandIn):
    """What ``_rebuild_tensor_v2`` returns here: a NumPy array, unwrapped once the pickle is read."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


def _ints(value, what: str) -> tuple:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                       for v in value):
        raise ValueError(f"tensor {what} must be a tuple of ints, got {value!r:.80}")
    return tuple(value)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """``torch._utils._rebuild_tensor_v2``: a (copied) strided view of ``storage``, bounds-checked first."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"_rebuild_tensor_v2: expected a storage, got {type(storage).__name__}")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not isinstance(storage_offset, int) or storage_offset < 0 or len(size) != len(stride) or \
            min(size + stride, default=0) < 0:
        raise ValueError(f"_rebuild_tensor_v2: invalid offset/size/stride {storage_offset!r}, {size}, {stride}")
    flat = storage.array
    if math.prod(size) == 0:
        return _Tensor(numpy.zeros(size, flat.dtype))
    if math.prod(size) > flat.size:     # also bounds the memory a small file can make us allocate
        raise ValueError(f"_rebuild_tensor_v2: a tensor of size {size} has more elements than its storage "
                         f"({flat.size}); expanded (stride-0) tensors are not supported, save t.contiguous()")
    end = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if end > flat.size:
        raise ValueError(f"_rebuild_tensor_v2: a tensor of size {size}, stride {stride} at offset {storage_offset} "
                         f"reads past its storage of {flat.size} elements")
    view = numpy.lib.stride_tricks.as_strided(flat[storage_offset:], size, [s * flat.itemsize for s in stride])
    return _Tensor(numpy.array(view, copy=True))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """``torch._utils._rebuild_parameter(_with_state)``: a Parameter is its data."""
    if not isinstance(data, _Tensor):
        raise ValueError(f"_rebuild_parameter: expected a tensor, got {type(data).__name__}")
    return data


_ALLOWED = {("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}


_SYSTEM = {"builtins", "__builtin__", "os", "posix", "nt", "subprocess", "commands", "sys", "shutil", "importlib",
           "runpy", "pty", "socket", "code", "codeop", "ctypes", "pickle", "marshal", "types", "functools", "operator"}


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_ALLOWED`` and ``torch.*Storage``; storages come from the zip."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str, path: str):
        super().__init__(io.BytesIO(data))
        self._zip, self._prefix, self._order, self._path, self._cache = archive, prefix, byteorder, path, {}

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            found = _ALLOWED[(module, name)]
            return found if isinstance(found, type) else _Call(found)
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        hint = "" if module.split(".")[0] in _SYSTEM else (
            " If the file holds a whole pickled model (torch.save(model)), save model.state_dict() instead.")
        raise UnsafeWeightsError(f"{self._path}: the checkpoint's pickle names the global '{module}.{name}', which "
                                 "Ember refuses to load: only tensors and plain containers (a state_dict) are "
                                 f"accepted, and nothing named in a file is ever imported or called.{hint}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise ValueError(f"unexpected persistent id {pid!r:.120}")
        stype, key, numel = pid[1], pid[2], pid[4]
        if key not in self._cache:
            self._cache[key] = _Storage(self._read_storage(stype, key, numel))
        return self._cache[key]

    def _read_storage(self, stype: _StorageType, key: str, numel: int):
        name = f"{self._prefix}data/{key}"
        try:
            info = self._zip.getinfo(name)
        except KeyError:
            raise ValueError(f"storage {key!r} is missing from the zip (no {name!r})") from None
        if numel < 0 or info.file_size != numel * stype.itemsize:
            raise ValueError(f"storage {key!r} ({stype.name}) should hold {numel} elements of {stype.itemsize} "
                             f"bytes but {name!r} has {info.file_size} bytes")
        raw = self._zip.read(name)
        end = "<" if self._order == "little" else ">"
        if stype.code == "bf16":
            return _bf16_to_f32(numpy.frombuffer(raw, end + "u2"))
        flat = numpy.frombuffer(raw, end + stype.code if stype.itemsize > 1 else stype.code)
        return flat.astype(stype.code, copy=False)         # read-only; each tensor copies its part


def _bf16_to_f32(bits):
    """bfloat16 bit patterns (uint16) as float32 (Ember has no bfloat16): the top half of a float32."""
    return (bits.astype(numpy.uint32) << 16).view(numpy.float32)


def _plain(obj, where: str):
    """The unpickled object with every tensor stand-in replaced by its array; only plain data may remain."""
    if isinstance(obj, _Tensor):
        return obj.array
    if isinstance(obj, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    what = f"the function {obj.fn.__name__} left uncalled" if isinstance(obj, _Call) else f"a {type(obj).__name__}"
    raise ValueError(f"{where} is {what}, not a tensor or plain value")


# ---------------------------------------------------------------- readers
def _read_torch_zip(path: str):
    """The object a ``torch.save`` zip checkpoint holds, with tensors as NumPy arrays."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(b"PK"):
        legacy = head[:1] == b"\x80"
        raise ValueError(
            f"load_torch_state_dict: {path} is not a zip checkpoint" + (
                ": it is PyTorch's legacy (pre-1.6) format, torch.save(..., _use_new_zipfile_serialization=False), "
                "which Ember does not read; re-save it in PyTorch with a plain torch.save(model.state_dict(), path) "
                "or as safetensors" if legacy else " (expected a file written by torch.save, or .safetensors)"))
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"load_torch_state_dict: {path} is not a readable zip file, truncated or damaged? ({e})") \
            from None
    with archive:
        names = archive.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            script = " (a TorchScript archive? Ember reads state_dicts only)" if any(
                n.endswith("/constants.pkl") for n in names) else ""
            raise ValueError(f"load_torch_state_dict: {path} is a zip but not a torch.save checkpoint: expected one "
                             f"'<name>/data.pkl', found {pkls}{script}")
        prefix = pkls[0][:-len("data.pkl")]
        try:
            order = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names \
                else "little"
            if order not in ("little", "big"):
                raise ValueError(f"unknown byteorder {order!r}")
            data = archive.read(pkls[0])
            return _plain(_StateDictUnpickler(data, archive, prefix, order, path).load(), "the checkpoint")
        except UnsafeWeightsError:
            raise
        except Exception as e:      # any failure inside a malformed file becomes one clear error
            raise ValueError(f"load_torch_state_dict: {path} is a damaged or unsupported PyTorch checkpoint "
                             f"({type(e).__name__}: {e})") from None


_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bf16", "I64": "<i8", "I32": "<i4", "I16": "<i2",
              "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "b1"}


def _read_safetensors(path: str) -> dict:
    """``{name: array}`` from a safetensors file (bfloat16 widened to float32), every offset checked."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        n = int.from_bytes(data[:8], "little")
        if len(data) < 8 or 8 + n > len(data):
            raise ValueError(f"header of {n} bytes in a file of {len(data)} bytes")
        header = json.loads(data[8:8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        body = memoryview(data)[8 + n:]
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            code = _ST_DTYPES.get(info.get("dtype")) if isinstance(info, dict) else None
            if code is None:
                raise ValueError(f"tensor {name!r}: unsupported entry {info!r:.80}")
            shape = _ints(info.get("shape"), "shape")
            begin, end = _ints(info.get("data_offsets"), "data_offsets")
            size = 2 if code == "bf16" else numpy.dtype(code).itemsize
            nbytes = math.prod(shape) * size
            if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(body) or end - begin != nbytes:
                raise ValueError(f"tensor {name!r}: offsets {begin}..{end} don't fit shape {shape} of {info['dtype']} "
                                 f"in a body of {len(body)} bytes")
            raw = body[begin:end]
            arr = _bf16_to_f32(numpy.frombuffer(raw, "<u2")) if code == "bf16" else numpy.frombuffer(raw, code)
            out[name] = arr.astype(arr.dtype.newbyteorder("=")).reshape(shape)
        return out
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"load_torch_state_dict: {path} is not a valid safetensors file ({e})") from None


def load_torch_state_dict(path: str, key: str | None = None) -> dict:
    """``{name: numpy array}`` from a PyTorch ``state_dict`` saved as ``.safetensors`` or with ``torch.save``.

    ``key`` picks the state_dict inside a checkpoint dict (e.g. ``key="model"`` for
    ``torch.save({"model": net.state_dict(), "epoch": 3}, path)``). bfloat16 tensors come back as float32.
    Raises :class:`UnsafeWeightsError` when the pickle names anything but tensors and containers.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_torch_state_dict: no such file: {path}")
    obj = _read_safetensors(path) if path.lower().endswith(".safetensors") else _read_torch_zip(path)
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise KeyError(f"load_torch_state_dict: {path} has no entry {key!r}; its top-level entries are "
                           f"{list(obj) if isinstance(obj, dict) else type(obj).__name__}")
        obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"load_torch_state_dict: {path} holds a {type(obj).__name__}, not a state_dict")
    other = [k for k, v in obj.items() if not isinstance(v, numpy.ndarray)]
    if other:
        nested = [k for k in other if isinstance(obj[k], dict)]
        hint = f"; pass key={nested[0]!r} to load the state_dict inside" if nested else ""
        raise ValueError(f"load_torch_state_dict: {path} is not a flat state_dict: entries {other} are not tensors"
                         f"{hint}")
    return {str(k): v for k, v in obj.items()}


# ---------------------------------------------------------------- Ember modules
def _prefix_hint(missing: list, unexpected: list) -> str:
    """Suggest the usual fix when every file key has a wrapper's prefix (``module.`` from DataParallel...)."""
    for p in ("module.", "_orig_mod.", "model."):
        if unexpected and all(k.startswith(p) for k in unexpected) and \
                any(k[len(p):] in missing for k in unexpected):
            return (f"\n  hint: the file's keys start with {p!r}; strip it, e.g. "
                    f"{{k.removeprefix({p!r}): v for k, v in load_torch_state_dict(path).items()}}")
    return ""


def load_torch_weights(module, path: str, strict: bool = True, key: str | None = None) -> _IncompatibleKeys:
    """Load a PyTorch ``state_dict`` file (``.safetensors``, ``.pt``/``.pth``) into the matching Ember module.

    Names and shapes are checked for every key before anything changes; with ``strict=True`` missing and
    unexpected keys are errors too (listed together), with ``strict=False`` they are returned as
    ``(missing_keys, unexpected_keys)``. Values are cast to the module's dtypes.
    """
    arrays = load_torch_state_dict(path, key)
    own = module.state_dict()
    missing = [k for k in own if k not in arrays]
    unexpected = [k for k in arrays if k not in own]
    wrong = [f"{k!r} is {tuple(arrays[k].shape)} in the file but {tuple(v.shape)} in the model"
             for k, v in own.items() if k in arrays and tuple(arrays[k].shape) != tuple(v.shape)]
    problems = [f"shape mismatch: {w}" for w in wrong]
    if strict and missing:
        problems.append(f"missing keys (in the model, not in the file): {missing}")
    if strict and unexpected:
        problems.append(f"unexpected keys (in the file, not in the model): {unexpected}")
    if problems:
        raise ValueError(f"load_torch_weights({path!r}) into {type(module).__name__}:\n  " + "\n  ".join(problems)
                         + _prefix_hint(missing, unexpected))
    module.load_state_dict({k: v.xp.asarray(arrays[k]) for k, v in own.items() if k in arrays}, strict=False)
    return _IncompatibleKeys(missing, unexpected)


def save_torch_state_dict(module, path: str) -> None:
    """Write ``module.state_dict()`` as safetensors that ``safetensors.torch.load_file`` and then the matching
    ``torch.nn.Module.load_state_dict`` accept (same keys and layouts as PyTorch's modules)."""
    from ..serialization import save
    if not os.fspath(path).lower().endswith(".safetensors"):
        raise ValueError(f"save_torch_state_dict: {path!r}: Ember writes PyTorch weights as safetensors only (never "
                         "a pickle); use a name ending in '.safetensors'")
    arrays = {}
    for k, v in module.state_dict().items():
        a = v.detach().data if isinstance(v, Tensor) else v
        arrays[k] = numpy.ascontiguousarray(a.get() if hasattr(a, "get") else a)
    save(arrays, path, metadata={"format": "pt"})
