"""Callbacks of ``MLP.fit``: early stopping, model checkpoints, a CSV log.

A callback is a callable ``cb(history)`` or an object with some of these methods,
called by ``fit`` in this order::

    cb.on_train_begin(net, history)   # after every argument check, before training;
                                      # history.recorded: the keys that get values
    cb.on_epoch_end(history)          # after each finished epoch (the network, its
                                      # optimizer and counters stand at its end);
                                      # a true return value stops training
    cb.on_train_end(history)          # when training ends without an exception
                                      # (last epoch, a stop, or divergence)

``history`` is the ``History`` of the current fit call; its last entries are the
epoch just finished.  Any History key can be monitored: 'loss', 'val_loss',
'val_accuracy', the ``metrics=`` of fit ('accuracy', 'mae', 'r2' and their ``val_``
forms), 'lr'.
"""
import math
import os
from typing import TYPE_CHECKING, Any, List

import numpy as np

from . import _validation as v
from ._typing import PathLike

if TYPE_CHECKING:
    from .network import MLP
    from .training import History

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger"]

#: monitored keys for which larger is better under mode='auto'
_HIGHER_IS_BETTER = ("accuracy", "r2")


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


class Callback:
    """Base class of the callbacks: every hook does nothing."""

    def on_train_begin(self, net: "MLP", history: "History") -> None:
        pass

    def on_epoch_end(self, history: "History") -> bool:
        return False

    def on_train_end(self, history: "History") -> None:
        pass


class _Monitor:
    """Which History key to watch and which direction improves it.

    A ``val_`` key that gets no values in a run (fit without validation data) falls
    back to the same key without the prefix ('val_loss' -> 'loss'), so the defaults
    work with and without validation data.  A NaN, infinite or None value never
    improves."""

    def __init__(self, monitor, mode, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a History key (a str), got {monitor!r}")
        self.monitor = monitor
        self.mode = v.check_name(mode, "mode", ("auto", "min", "max"))
        self.min_delta = v.check_float(min_delta, "min_delta", 0.0)
        self._key = monitor

    def _resolve(self, history):
        recorded = history.recorded
        key = self.monitor
        if key not in recorded and key.startswith("val_") and key[4:] in recorded:
            key = key[4:]
        if key not in recorded:
            raise ValueError(f"monitor {self.monitor!r} is not recorded in this run; "
                             f"recorded: {', '.join(recorded)}")
        self._key = key

    @property
    def _maximize(self):
        if self.mode == "auto":
            return self._key.split("_")[-1] in _HIGHER_IS_BETTER
        return self.mode == "max"

    def _worst(self):
        return -math.inf if self._maximize else math.inf

    def _improves(self, value, best):
        if value is None or not math.isfinite(value):
            return False
        if self._maximize:
            return value > best + self.min_delta
        return value < best - self.min_delta


class EarlyStopping(_Monitor, Callback):
    """Stop when the monitored History key has not improved for ``patience`` epochs.

    Improvement means ``value < best - min_delta`` (mode 'min') or
    ``value > best + min_delta`` (mode 'max'); the first finite value always improves.
    With ``restore_best_weights`` the parameters of the best epoch are put back when
    training ends (stopped or not); the optimizer state and counters stay those of the
    last epoch, as in Keras.  Sets ``history.best_epoch`` and, when it stops,
    ``history.stop_reason = 'early_stopping'``.

    Parameters
    ----------
    patience : int >= 0
        Epochs without improvement before stopping (0 stops at the first one).
    min_delta : float >= 0
    restore_best_weights : bool
    monitor : str
        Any History key; 'val_loss' (the default) falls back to 'loss' without
        validation data, likewise for the other ``val_`` keys.
    mode : {'auto', 'min', 'max'}
        'auto': 'max' for accuracy and r2 keys, 'min' otherwise.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0,
                 restore_best_weights: bool = True, monitor: str = "val_loss",
                 mode: str = "auto") -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = v.check_int(patience, "patience", low=0)
        self.restore_best_weights = bool(restore_best_weights)
        self._net: Any = None          # the MLP between on_train_begin and on_train_end
        self.best = None
        self.wait = 0
        self._best_params = None

    def on_train_begin(self, net: "MLP", history: "History") -> None:
        self._resolve(history)
        self._net = net
        self.best, self.wait, self._best_params = self._worst(), 0, None

    def on_epoch_end(self, history: "History") -> bool:
        value = history[self._key][-1]
        if self._improves(value, self.best):
            self.best, self.wait = value, 0
            history.best_epoch = history.epoch[-1]
            if self.restore_best_weights:
                self._best_params = self._net.params.copy()
            return False
        self.wait += 1
        if self.wait >= self.patience:
            history.stop_reason = history.stop_reason or "early_stopping"
            return True
        return False

    def on_train_end(self, history: "History") -> None:
        if self._best_params is not None:
            self._net.params[...] = self._best_params
        self._net, self._best_params = None, None

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best_weights={self.restore_best_weights}, "
                f"monitor={self.monitor!r}, mode={self.mode!r})")


class ModelCheckpoint(_Monitor, Callback):
    """Save the network (``net.save``: atomic, the whole training state) during fit.

    Saves after every ``every``-th epoch (counted by the network's global epoch
    index: epochs e with ``(e + 1) % every == 0``), or with ``save_best_only`` after
    each epoch that improves the monitored key (as ``EarlyStopping`` defines it).
    The file is written to a temporary name and renamed over ``path``, so a crash
    while saving leaves the previous checkpoint intact.  ``gd.load(path)`` resumes
    training from it exactly.

    Parameters
    ----------
    path : str or os.PathLike
        May contain ``{epoch}`` (the global epoch index, 0-based) to keep one file per
        save; otherwise each save replaces the last.
    monitor : str
        History key for ``save_best_only`` (``val_`` keys fall back as in
        EarlyStopping).
    mode : {'auto', 'min', 'max'}
    save_best_only : bool
    every : int >= 1
        Epochs between saves when not ``save_best_only``.
    min_delta : float >= 0

    Attributes
    ----------
    saved : list of str
        The paths written by the last fit call, in order.
    """

    def __init__(self, path: PathLike, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = False, every: int = 1, min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        try:
            self.path.format(epoch=0)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"path may contain only the field {{epoch}}, got "
                             f"{self.path!r} ({err})") from None
        self.save_best_only = bool(save_best_only)
        self.every = v.check_int(every, "every", low=1)
        self.saved: List[str] = []
        self._net: Any = None          # the MLP between on_train_begin and on_train_end
        self.best = None

    def on_train_begin(self, net: "MLP", history: "History") -> None:
        if self.save_best_only:
            self._resolve(history)
        self._net, self.best, self.saved = net, self._worst(), []

    def on_epoch_end(self, history: "History") -> bool:
        epoch = history.epoch[-1]
        if self.save_best_only:
            value = history[self._key][-1]
            if not self._improves(value, self.best):
                return False
            self.best = value
        elif (epoch + 1) % self.every:
            return False
        path = self.path.format(epoch=epoch)
        self._net.save(path)
        self.saved.append(path)
        return False

    def on_train_end(self, history: "History") -> None:
        self._net = None

    def __repr__(self):
        return (f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, "
                f"mode={self.mode!r}, save_best_only={self.save_best_only}, "
                f"every={self.every})")


class CSVLogger(Callback):
    """Append one row per epoch to a CSV file: the History keys recorded in the run.

    The header (``epoch,loss,...``) is written when the file is new or empty; with
    ``append=False`` (the default) an existing file is replaced when training begins.
    Each row is written and the file closed at the end of its epoch, so the log is
    complete up to the last finished epoch whatever happens next.  Missing values
    (None) are written as empty fields; floats with ``repr`` (round-trip exact).

    Parameters
    ----------
    path : str or os.PathLike
    separator : str
        One character.
    append : bool
        Continue an existing file (whose header must match the recorded keys).
    """

    def __init__(self, path: PathLike, separator: str = ",", append: bool = False) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n.-":
            raise ValueError(f"separator must be one character (not a newline, '.' or "
                             f"'-'), got {separator!r}")
        self.path = os.fspath(path)
        self.separator = separator
        self.append = bool(append)
        self._keys: Any = None         # the History keys of the columns, once begun

    def on_train_begin(self, net: "MLP", history: "History") -> None:
        keys = list(history.recorded)
        header = self.separator.join(keys)
        existing = None
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path, encoding="utf-8") as f:
                existing = f.readline().rstrip("\r\n")
            if existing != header:
                raise ValueError(f"{self.path!r} has the columns {existing!r}, this run "
                                 f"records {header!r}; use another file or append=False")
        if existing is None:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(header + "\n")
        self._keys = keys

    def on_epoch_end(self, history: "History") -> bool:
        fields = []
        for key in self._keys:
            value = history[key][-1]
            if value is None:
                fields.append("")
            elif isinstance(value, (float, np.floating)):
                fields.append(repr(float(value)))
            else:
                fields.append(str(value))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(self.separator.join(fields) + "\n")
        return False

    def __repr__(self):
        return (f"CSVLogger({self.path!r}, separator={self.separator!r}, "
                f"append={self.append})")
