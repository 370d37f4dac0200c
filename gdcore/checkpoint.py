"""Checkpoints: ``net.save(path)`` and ``gd.load(path)``.

One ``.npz`` file (a zip of NumPy arrays, read with ``allow_pickle=False``, so loading
an untrusted file cannot run code) holds:

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
import zipfile

import numpy as np

from . import _validation as v
from . import optim as _optim
from . import schedules as _schedules
from ._io import atomic_write

__all__ = ["save", "load"]

FORMAT = "gdcore-checkpoint"
VERSION = 1
_OPTIMIZERS = {cls.__name__: cls for cls in (_optim.SGD, _optim.Adagrad, _optim.Adadelta,
                                              _optim.RMSprop, _optim.Adam, _optim.AdamW)}
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


def save(net, path):
    """Write the network and its training state to ``path`` (see the module docstring)."""
    from . import __version__

    arrays = {"params": net.params}
    optimizer = None
    if net.optimizer is not None:
        opt = net.optimizer
        optimizer = {"class": type(opt).__name__, "hyperparameters": opt.hyperparameters,
                     "step": opt.step_count, "backend": opt.backend,
                     "state": sorted(opt.state)}
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
            "loss": net.loss_name,
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


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise _Corrupt("not an .npz archive")
            files = set(data.files)
            if "meta" not in files or "params" not in files:
                raise _Corrupt("no gdcore metadata in it")
            arrays = {name: data[name] for name in files}
    except FileNotFoundError:
        raise
    except _Corrupt:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError,
            zipfile.LargeZipFile) as err:
        raise _Corrupt(f"unreadable or truncated ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _Corrupt(f"corrupt metadata ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Corrupt("not a gdcore checkpoint")
    if meta.get("version") != VERSION:
        raise _Corrupt(f"checkpoint version {meta.get('version')!r}; this gdcore reads "
                       f"version {VERSION}")
    return meta, arrays


def load(path):
    """Rebuild the network saved at ``path``, with its optimizer, schedule, generator
    and epoch count, ready to continue training exactly where it stopped."""
    from .network import MLP
    from .training import History

    path = os.fspath(path)
    try:
        meta, arrays = _read(path)
        arch = meta["network"]
        net = MLP(arch["layer_sizes"], activation=arch["activation"], output=arch["output"],
                  loss=arch["loss"], dtype=arch["dtype"], seed=arch["seed"],
                  backend=arch["backend"], dropout=arch["dropout"])
        params = arrays["params"]
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
            state = {key: arrays[f"optimizer/{key}"] for key in opt_meta["state"]}
            opt.load_state_dict({"optimizer": opt_meta["class"], "step": opt_meta["step"],
                                 "hyperparameters": opt_meta["hyperparameters"],
                                 "state": state})
            for key, buf in opt.state.items():
                if buf.shape != net.params.shape or buf.dtype != net.params.dtype:
                    raise _Corrupt(f"optimizer buffer {key!r} does not match the parameters")
            net.optimizer = opt
        if meta["lr_schedule"] is not None:
            net.lr_schedule = _schedules.from_state_dict(meta["lr_schedule"])
        history = History()
        for key in History.KEYS:
            getattr(history, key).extend(meta["history"][key])
        net.history = history
    except FileNotFoundError:
        raise
    except _Corrupt as err:
        raise ValueError(f"{path!r} is not a valid gdcore checkpoint: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path!r} is not a valid gdcore checkpoint: "
                         f"{type(err).__name__}: {err}") from None
    return net
