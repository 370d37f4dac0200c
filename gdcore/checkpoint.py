"""Checkpoints: the file format behind ``net.save(path)`` and ``gd.load(path)``.

This module knows the format, not the classes it restores: ``restore`` takes the
network and history classes from its caller (``gdcore.network.load``), so that
``gdcore.network`` imports this module and never the reverse.

One ``.npz`` file (a zip of NumPy arrays, read with ``allow_pickle=False``, so loading
an untrusted file cannot run code) holds::

    meta              UTF-8 JSON: format/version, the architecture, the training state
                      (epochs trained, the generator's state, the optimizer's class,
                      hyperparameters and step count, the schedule's state), the history
    params            the flat parameter buffer
    optimizer/<name>  each optimizer state buffer

Writes are atomic (temporary file, fsync, rename): a process killed during ``save``
leaves the previous checkpoint intact.  A resumed network continues bitwise as if
training had never stopped.  A corrupt, truncated or foreign file raises ``ValueError``.
"""
import json
import os
import struct
import zipfile
import zlib
from typing import Any, Dict

import numpy as np

from . import _constants
from . import _validation as v
from . import optim as _optim
from . import schedules as _schedules
from ._io import atomic_write
from ._typing import PathLike

__all__ = ["save", "restore"]

FORMAT = "gdcore-checkpoint"
VERSION = 1
_OPTIMIZERS = {cls.__name__: cls for cls in (_optim.SGD, _optim.Adagrad, _optim.Adadelta,
                                              _optim.RMSprop, _optim.Adam, _optim.AdamW,
                                              _optim.NAdam, _optim.Adamax, _optim.RAdam,
                                              _optim.Rprop)}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(x) for x in value]
    if isinstance(value, dict):
        return {k: _jsonable(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_jsonable(x) for x in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(net: Any, path: PathLike) -> None:
    """Write the network and its training state to ``path`` (see the module docstring)."""
    from . import __version__

    arrays: Dict[str, Any] = {"params": net.params}
    optimizer = None
    if net.optimizer is not None:
        opt = net.optimizer
        optimizer = {"class": type(opt).__name__, "hyperparameters": opt.hyperparameters,
                     "step": opt.step_count, "backend": opt.backend,
                     "state": sorted(opt.state), "clipping": opt.clipping,
                     "param_groups": opt.param_groups}
        for name, buf in opt.state.items():
            arrays[f"optimizer/{name}"] = buf
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "gdcore": __version__,
        "network": {
            "layer_sizes": net.layer_sizes,
            "activation": net.activations[:-1],
            "output": net.output,
            "loss": net.loss_spec,
            "dtype": net.dtype.name,
            "seed": net.seed,
            "backend": net.backend,
            "dropout": net.dropout,
        },
        "epochs_trained": net.epochs_trained,
        "rng": net._rng.bit_generator.state,
        "optimizer": optimizer,
        "lr_schedule": net.lr_schedule.state_dict() if net.lr_schedule is not None else None,
        "history": net.history.as_dict(),
    }
    text = json.dumps(_jsonable(meta), allow_nan=True)
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


class _Corrupt(ValueError):
    pass


# Bounds on what a checkpoint may make ``load`` read before it is trusted.
MAX_META_BYTES = 64 << 20      # the JSON metadata (the history grows it: ~100 B/epoch)
MAX_META_DEPTH = 16            # nesting of the metadata (a real one nests 4 deep)
MAX_LAYERS = _constants.MAX_LAYERS      # as the native step
# deflate cannot expand more than ~1032:1; a member claiming more lies about its size
_MAX_DEFLATE_RATIO = 1032


def _depth(value):
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_META_DEPTH:
            return depth
        if isinstance(item, dict):
            stack.extend((x, depth + 1) for x in item.values())
        elif isinstance(item, list):
            stack.extend((x, depth + 1) for x in item)
    return deepest


def _member(archive, name, file_size):
    """The ZipInfo of member ``name`` after checking its sizes against the file."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _Corrupt(f"member {name!r} is missing") from None
    if info.compress_size > file_size:
        raise _Corrupt(f"member {name!r} claims {info.compress_size} bytes in a file of "
                       f"{file_size}")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise _Corrupt(f"member {name!r} has inconsistent sizes")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > _MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise _Corrupt(f"member {name!r} claims an impossible compression ratio")
    else:
        raise _Corrupt(f"member {name!r} uses an unsupported compression method "
                       f"{info.compress_type}")
    return info


def _read_array(archive, name, file_size, shape=None, dtype=None, max_bytes=None):
    """Read member ``name`` (a .npy) after checking its header: 1-D, of ``shape`` and
    ``dtype`` when given, and no larger than the member's stored size allows."""
    info = _member(archive, name, file_size)
    fmt = np.lib.format
    with archive.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            header = fmt.read_array_header_1_0(f, max_header_size=10000)
        elif version in ((2, 0), (3, 0)):
            header = fmt.read_array_header_2_0(f, max_header_size=10000)
        else:
            raise _Corrupt(f"member {name!r} has .npy version {version}")
        got_shape, fortran, got_dtype = header
        if got_dtype.hasobject or got_dtype.kind not in "uif" or len(got_shape) != 1:
            raise _Corrupt(f"member {name!r} is {got_dtype} of shape {got_shape}, not a "
                           f"1-D numeric array")
        if shape is not None and got_shape != shape:
            raise _Corrupt(f"member {name!r} has shape {got_shape}, the architecture "
                           f"needs {shape}")
        if dtype is not None and got_dtype != dtype:
            raise _Corrupt(f"member {name!r} has dtype {got_dtype}, expected {dtype}")
        nbytes = got_shape[0] * got_dtype.itemsize
        if nbytes > info.file_size or (max_bytes is not None and nbytes > max_bytes):
            raise _Corrupt(f"member {name!r} claims {nbytes} bytes of data, more than "
                           f"it holds or than allowed")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise _Corrupt(f"member {name!r} is truncated")
    return np.frombuffer(data, dtype=got_dtype).copy()


def _check_architecture(arch):
    """Layer sizes and dtype from the metadata, checked before anything is allocated:
    returns (n_params, dtype)."""
    if not isinstance(arch, dict):
        raise _Corrupt("the network description is not a mapping")
    sizes = arch.get("layer_sizes")
    if (not isinstance(sizes, list) or not 2 <= len(sizes) <= MAX_LAYERS + 1
            or not all(type(n) is int and 1 <= n <= v.MAX_DIM for n in sizes)):
        raise _Corrupt(f"layer_sizes must be 2 to {MAX_LAYERS + 1} positive integers, got "
                       f"{str(sizes)[:80]}")
    try:
        dtype = np.dtype(arch.get("dtype"))
    except TypeError:
        raise _Corrupt(f"unknown dtype {arch.get('dtype')!r}") from None
    if dtype not in v.FLOAT_DTYPES:
        raise _Corrupt(f"dtype must be float32 or float64, got {dtype}")
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])), dtype


def _read(path):
    """(meta, params, optimizer state arrays) of the checkpoint at ``path``.

    Only the expected members are read, the metadata first and bounded in size and
    nesting; the arrays' headers are checked against the architecture the metadata
    describes before their data is read, so a small hostile file cannot make ``load``
    allocate or decompress more than the architecture it claims and it holds."""
    file_size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = _member(archive, "meta.npy", file_size)
            if info.file_size > MAX_META_BYTES:
                raise _Corrupt(f"metadata of {info.file_size} bytes (at most "
                               f"{MAX_META_BYTES})")
            text = _read_array(archive, "meta.npy", file_size, dtype=np.dtype(np.uint8),
                               max_bytes=MAX_META_BYTES)
            try:
                meta = json.loads(text.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
                raise _Corrupt(f"corrupt metadata ({type(err).__name__})") from None
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise _Corrupt("not a gdcore checkpoint")
            if meta.get("version") != VERSION:
                raise _Corrupt(f"checkpoint version {meta.get('version')!r}; this gdcore "
                               f"reads version {VERSION}")
            if _depth(meta) > MAX_META_DEPTH:
                raise _Corrupt(f"metadata nested deeper than {MAX_META_DEPTH} levels")
            n_params, dtype = _check_architecture(meta.get("network"))
            params = _read_array(archive, "params.npy", file_size, (n_params,), dtype)
            state = {}
            opt_meta = meta.get("optimizer")
            if opt_meta is not None:
                names = opt_meta.get("state") if isinstance(opt_meta, dict) else None
                if (not isinstance(names, list) or len(names) > 3
                        or not all(isinstance(n, str) and n.isidentifier() for n in names)):
                    raise _Corrupt("the optimizer's state names are not a short list of "
                                   "names")
                for key in names:
                    state[key] = _read_array(archive, f"optimizer/{key}.npy", file_size,
                                             (n_params,), dtype)
    except _Corrupt:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError,
            KeyError, NotImplementedError, RuntimeError, zlib.error, struct.error,
            SyntaxError, TypeError, AttributeError, OverflowError, MemoryError) as err:
        raise _Corrupt(f"unreadable or truncated ({type(err).__name__}: "
                       f"{str(err)[:200]})") from None
    return meta, params, state


def restore(path: PathLike, MLP: Any, History: Any) -> Any:
    """Rebuild the network saved at ``path`` as an ``MLP`` (the class is given, see the
    module docstring), with its optimizer, schedule, generator, epoch count and
    ``History``, ready to continue training exactly where it stopped.

    ``MLP`` and ``History`` are annotated ``Any`` (and ``save``'s ``net``): this module
    never imports the classes, not even for type checking."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    try:
        meta, params, state = _read(path)
        arch = meta["network"]
        net = MLP(arch["layer_sizes"], activation=arch["activation"], output=arch["output"],
                  loss=arch["loss"], dtype=arch["dtype"], seed=arch["seed"],
                  backend=arch["backend"], dropout=arch["dropout"])
        if params.shape != net.params.shape or params.dtype != net.params.dtype:
            raise _Corrupt(f"params has shape {params.shape} and dtype {params.dtype}; "
                           f"the architecture needs {net.params.shape} {net.params.dtype}")
        net.params[...] = params
        net.epochs_trained = v.check_int(meta["epochs_trained"], "epochs_trained", low=0)
        rng_state = meta["rng"]
        name = rng_state.get("bit_generator")
        if name not in _BIT_GENERATORS:
            raise _Corrupt(f"unknown random generator {name!r}")
        net._rng = np.random.Generator(getattr(np.random, name)())
        net._rng.bit_generator.state = rng_state
        opt_meta = meta["optimizer"]
        if opt_meta is not None:
            cls = _OPTIMIZERS.get(opt_meta["class"])
            if cls is None:
                raise _Corrupt(f"unknown optimizer {opt_meta['class']!r}")
            opt = cls(backend=opt_meta.get("backend", "native"))
            opt.load_state_dict({"optimizer": opt_meta["class"], "step": opt_meta["step"],
                                 "hyperparameters": opt_meta["hyperparameters"],
                                 "state": state,
                                 "clipping": opt_meta.get("clipping"),
                                 "param_groups": opt_meta.get("param_groups")})
            for key, buf in opt.state.items():
                if buf.shape != net.params.shape or buf.dtype != net.params.dtype:
                    raise _Corrupt(f"optimizer buffer {key!r} does not match the parameters")
            net.optimizer = opt
        if meta["lr_schedule"] is not None:
            net.lr_schedule = _schedules.from_state_dict(meta["lr_schedule"])
        extra = [k for k in meta["history"] if k not in History.KEYS]
        history = History(extra)       # metric keys: History rejects unknown ones
        for key in history.keys():
            records = meta["history"][key]
            if not isinstance(records, list) or len(records) != len(meta["history"]["epoch"]):
                raise _Corrupt(f"history {key!r} is not a list of one entry per epoch")
            getattr(history, key).extend(records)
        net.history = history
    except FileNotFoundError:
        raise
    except _Corrupt as err:
        raise ValueError(f"{path!r} is not a valid gdcore checkpoint: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError,
            RecursionError, IndexError) as err:
        raise ValueError(f"{path!r} is not a valid gdcore checkpoint: "
                         f"{type(err).__name__}: {err}") from None
    return net
