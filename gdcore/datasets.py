"""Small datasets for examples and tests, and MNIST-format IDX file I/O.

- ``seven_points()``: the textbook seven-point linear-regression example.
- ``spirals``, ``moons`` (classification) and ``sine`` (regression): seeded synthetic
  generators returning ``(X, y)`` with X float64 of shape (n_samples, n_features),
  y int64 class labels or float64 targets.  The same seed gives the same arrays.
- ``load_idx`` / ``save_idx``: read and write IDX files (the format of the MNIST
  distribution), raw or gzip-compressed.
"""
import gzip
import math
import os
import struct
import zlib

from typing import Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from ._io import atomic_write
from ._validation import check_float, check_int

__all__ = ["seven_points", "spirals", "moons", "sine", "load_idx", "save_idx",
           "synthetic_digits"]


#: A seed: an int, None (fresh entropy) or a Generator used as is.
Seed = Union[int, None, np.random.Generator]
#: A file path.
PathLike = Union[str, "os.PathLike[str]"]

def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def seven_points() -> Tuple[np.ndarray, np.ndarray]:
    """The seven-point linear-regression example of the textbook.

    ====  ====  ====  ====  ====  ====  ====  ====
    x     2.4   2.8   3.2   3.6   4.0   4.2   5.0
    y     1.7   1.85  1.79  1.95  2.1   2.0   2.7
    ====  ====  ====  ====  ====  ====  ====  ====

    Returns
    -------
    x : ndarray of shape (7, 1), float64
        The inputs as a one-column design matrix (add a column of ones, or use a
        bias, for the intercept).
    y : ndarray of shape (7,), float64
        The targets.

    New arrays on every call.
    """
    x = np.array([2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0], dtype=np.float64).reshape(7, 1)
    y = np.array([1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7], dtype=np.float64)
    return x, y


def synthetic_digits(n_samples: int = 10_000, seed: Seed = 0,
                     noise: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
    """Built-in stand-in for MNIST: 28 x 28 grey images of ten stroke patterns.

    Not handwriting: each class is a fixed figure of three to five random pen strokes
    (seeded by the class index, so every call draws the same ten figures); a sample
    is its class figure moved by up to three pixels in each direction, scaled in
    brightness by a factor in [0.6, 1], with Gaussian pixel noise of standard
    deviation ``noise``, clipped to [0, 1].  The shapes and value range are those of
    MNIST scaled by 1/255, so a 784-15-10 network runs on it unchanged; it is easier
    than MNIST and its accuracies say nothing about MNIST's.

    Parameters
    ----------
    n_samples : int
        Number of images, >= 1; the classes are balanced (``n_samples % 10`` classes
        get one more).
    seed : int, None or numpy.random.Generator
        Seeds the shifts, brightness, noise and order (not the class figures).
    noise : float
        Standard deviation of the pixel noise, >= 0.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), float32
        Pixel values in [0, 1], row-major 28 x 28 images, in random order.
    y : ndarray of shape (n_samples,), int64
        The class of each image, 0 to 9.
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    noise = check_float(noise, "noise", 0.0)
    rng = _rng(seed)
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float64)
    figures = np.zeros((10, 34, 34), dtype=np.float32)
    for k in range(10):
        strokes = np.random.default_rng(1000 + k)
        image = np.zeros((28, 28))
        for _ in range(int(strokes.integers(3, 6))):
            (r0, c0), (r1, c1) = strokes.uniform(6, 22, size=(2, 2))
            t = np.linspace(0.0, 1.0, 40)[:, None, None]
            dist2 = (rows - (r0 + t * (r1 - r0))) ** 2 + (cols - (c0 + t * (c1 - c0))) ** 2
            image = np.maximum(image, np.exp(-dist2.min(axis=0) / 1.5))
        figures[k, 3:31, 3:31] = image
    y = np.repeat(np.arange(10), _class_sizes(n_samples, 10))
    shifts = rng.integers(0, 7, size=(n_samples, 2))
    X = np.empty((n_samples, 28, 28), dtype=np.float32)
    for i in range(n_samples):
        r, c = shifts[i]
        X[i] = figures[y[i], r:r + 28, c:c + 28]
    X *= rng.uniform(0.6, 1.0, size=(n_samples, 1, 1)).astype(np.float32)
    X += np.float32(noise) * rng.standard_normal(X.shape, dtype=np.float32)
    np.clip(X, 0.0, 1.0, out=X)
    order = rng.permutation(n_samples)
    return (np.ascontiguousarray(X.reshape(n_samples, 784)[order], dtype=np.float32),
            y[order].astype(np.int64))


def _rng(seed):
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    return np.random.default_rng(check_int(seed, "seed", 0))


def _class_sizes(n_samples, n_classes):
    """Balanced class sizes: the first ``n_samples % n_classes`` classes get one more."""
    base, extra = divmod(n_samples, n_classes)
    return [base + (k < extra) for k in range(n_classes)]


def _finish(X, y, shuffle, rng):
    if shuffle:
        order = rng.permutation(X.shape[0])
        X, y = X[order], y[order]
    return np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y)


def spirals(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2, seed: Seed = 0,
            shuffle: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one class per arm (the CS231n toy problem).

    Arm k holds points at radius r evenly spaced in [0, 1] and angle
    ``t = 4 r + 2 pi k / n_classes + noise * N(0, 1)`` (radians), at
    ``(r sin t, r cos t)``.  Not linearly separable: a network needs a hidden layer.

    Parameters
    ----------
    n_samples : int
        Total number of points, >= 1, split between the classes as evenly as
        possible (the first ``n_samples % n_classes`` classes get one more).
    n_classes : int
        Number of arms, >= 2.
    noise : float
        Standard deviation of the Gaussian noise added to the angle, >= 0.
    seed : int, None or numpy.random.Generator
        Seed of ``np.random.default_rng``; a Generator is used (and advanced) as is.
    shuffle : bool
        Shuffle the samples; otherwise they are grouped by class.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float64
    y : ndarray of shape (n_samples,), int64
        Class labels in [0, n_classes).
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_classes = check_int(n_classes, "n_classes", 2)
    noise = check_float(noise, "noise", 0.0)
    rng = _rng(seed)
    X_parts, y_parts = [], []
    for k, n_k in enumerate(_class_sizes(n_samples, n_classes)):
        r = np.linspace(0.0, 1.0, n_k)
        t = 4.0 * r + 2.0 * np.pi * k / n_classes + noise * rng.standard_normal(n_k)
        X_parts.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        y_parts.append(np.full(n_k, k, dtype=np.int64))
    return _finish(np.concatenate(X_parts), np.concatenate(y_parts), shuffle, rng)


def moons(n_samples: int = 200, noise: float = 0.1, seed: Seed = 0,
          shuffle: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as ``sklearn.datasets.make_moons``).

    Class 0: ``(cos s, sin s)``, class 1: ``(1 - cos s, 0.5 - sin s)``, s evenly
    spaced in [0, pi], plus Gaussian noise on both coordinates.

    Parameters
    ----------
    n_samples : int
        Total number of points, >= 1; class 0 gets ``n_samples // 2``.
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate, >= 0.
    seed : int, None or numpy.random.Generator
        Seed of ``np.random.default_rng``; a Generator is used (and advanced) as is.
    shuffle : bool
        Shuffle the samples; otherwise they are grouped by class.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float64
    y : ndarray of shape (n_samples,), int64
        Class labels 0 and 1.
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    noise = check_float(noise, "noise", 0.0)
    rng = _rng(seed)
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    s_outer = np.linspace(0.0, np.pi, n_outer)
    s_inner = np.linspace(0.0, np.pi, n_inner)
    X = np.concatenate([
        np.column_stack([np.cos(s_outer), np.sin(s_outer)]),
        np.column_stack([1.0 - np.cos(s_inner), 0.5 - np.sin(s_inner)]),
    ])
    X += noise * rng.standard_normal(X.shape)
    y = np.concatenate([np.zeros(n_outer, dtype=np.int64), np.ones(n_inner, dtype=np.int64)])
    return _finish(X, y, shuffle, rng)


def sine(n_samples: int = 100, noise: float = 0.1,
         seed: Seed = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Noisy samples of the sine: a one-input regression problem.

    x is drawn uniformly from [-pi, pi] and ``y = sin(x) + noise * N(0, 1)``.

    Parameters
    ----------
    n_samples : int
        Number of points, >= 1.
    noise : float
        Standard deviation of the Gaussian noise added to y, >= 0.
    seed : int, None or numpy.random.Generator
        Seed of ``np.random.default_rng``; a Generator is used (and advanced) as is.

    Returns
    -------
    X : ndarray of shape (n_samples, 1), float64
        The inputs, in random order.
    y : ndarray of shape (n_samples,), float64
        The noisy targets.
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    noise = check_float(noise, "noise", 0.0)
    rng = _rng(seed)
    x = rng.uniform(-np.pi, np.pi, n_samples)
    y = np.sin(x) + noise * rng.standard_normal(n_samples)
    return x.reshape(n_samples, 1), y


# IDX type code -> big-endian element dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES: "dict[int, np.dtype]" = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22


def _check_path(path, name="path"):
    # open() would take an int as a file descriptor.
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _read_exactly(f, n):
    """Up to ``n`` bytes, fewer only at the end of the stream; reads in chunks, so
    memory follows the data actually present, not a size claimed by a header."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse_idx(f, path, file_size):
    """Read an IDX stream from ``f``; ``file_size`` is the total size in bytes when
    known (raw files), None for gzip streams."""
    head = _read_exactly(f, 4)
    if len(head) < 4:
        raise ValueError(f"{path!r}: truncated header: {len(head)} bytes, an IDX file "
                         f"starts with 4 (magic, type code, number of dimensions)")
    if head[0] != 0 or head[1] != 0:
        raise ValueError(f"{path!r}: bad magic {bytes(head[:2])!r}: an IDX file starts "
                         f"with two zero bytes (or is gzip-compressed, 1f 8b)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path!r}: unknown type code 0x{code:02X}; known: "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}")
    if ndim == 0:
        raise ValueError(f"{path!r}: number of dimensions is 0; must be at least 1")
    dims_bytes = _read_exactly(f, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise ValueError(f"{path!r}: truncated header: {ndim} dimensions need "
                         f"{4 * ndim} bytes of sizes, found {len(dims_bytes)}")
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    dtype = _IDX_DTYPES[code]
    # Python ints: the product of corrupt sizes may not fit in 64 bits.
    n_bytes = math.prod(shape) * dtype.itemsize
    header_size = 4 + 4 * ndim
    if file_size is not None:
        if file_size < header_size + n_bytes:
            raise ValueError(f"{path!r}: data shorter than the header says: shape {shape} "
                             f"of {dtype.itemsize}-byte items needs {n_bytes} bytes, found "
                             f"{file_size - header_size}")
        if file_size > header_size + n_bytes:
            raise ValueError(f"{path!r}: {file_size - header_size - n_bytes} trailing bytes "
                             f"after the {n_bytes} bytes of data of shape {shape}")
    if file_size is not None:
        # The size is checked: allocate once and read into it.
        data = bytearray(n_bytes)
        n_read = 0
        with memoryview(data) as view:
            while n_read < n_bytes:
                n = f.readinto(view[n_read:n_read + _CHUNK])
                if not n:
                    break
                n_read += n
        del data[n_read:]
    else:
        data = _read_exactly(f, n_bytes)
    if len(data) < n_bytes:
        raise ValueError(f"{path!r}: data shorter than the header says: shape {shape} of "
                         f"{dtype.itemsize}-byte items needs {n_bytes} bytes, found "
                         f"{len(data)}")
    # For gzip, this read also makes the gzip module check the CRC and length trailer.
    extra = f.read(1)
    if extra:
        raise ValueError(f"{path!r}: trailing bytes after the {n_bytes} bytes of data "
                         f"of shape {shape}")
    # bytearray -> writable array; swap in place instead of copying.
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if not array.dtype.isnative:
        array = array.byteswap(inplace=True).view(array.dtype.newbyteorder("="))
    return array


def load_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), raw or gzip-compressed.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
    int32, 0x0D float32, 0x0E float64), the number of dimensions, each dimension as a
    big-endian uint32, then the data in C order, big-endian.  Compression is detected
    from the gzip magic bytes (1f 8b), not from the file name.

    The header is checked against the data before anything of the size it claims is
    allocated: against the file size for raw files; for gzip streams the data is read
    in chunks and reading stops at the end of the stream.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray
        Of the file's shape and element type, native byte order, writable.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        Naming the file, for a bad magic number, an unknown type code, zero
        dimensions, a truncated header, data shorter than the header says, trailing
        bytes, or a corrupt gzip stream.
    """
    path = _check_path(path)
    with open(path, "rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not is_gzip:
            return _parse_idx(f, path, os.fstat(f.fileno()).st_size)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                return _parse_idx(g, path, None)
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            raise ValueError(f"{path!r}: corrupt or truncated gzip stream: {exc}") from None


def save_idx(path: PathLike, array: ArrayLike, compress: Optional[bool] = None) -> None:
    """Write ``array`` to an IDX file, atomically.

    The file is written to a temporary file in the same directory, flushed and
    fsynced, then renamed over ``path`` (``os.replace``): readers see the old file or
    the complete new one, never a partial write.  The temporary file is created with
    mode 0o666 less the umask, like a plain ``open(path, "wb")``.

    Parameters
    ----------
    path : str or os.PathLike
    array : array_like
        At least 1-D, each dimension < 2**32, of dtype uint8, int8, int16, int32,
        float32 or float64 (any byte order; written big-endian).
    compress : bool or None
        Write a gzip-compressed file.  None (default): compress when ``path`` ends
        with ``.gz``.
    """
    path = os.fsdecode(_check_path(path))
    if compress is None:
        compress = path.endswith(".gz")
    elif not isinstance(compress, (bool, np.bool_)):
        raise TypeError(f"compress must be True, False or None, got {compress!r}")
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise TypeError(f"array must have dtype uint8, int8, int16, int32, float32 or "
                        f"float64, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2 ** 32 for d in array.shape):
        raise ValueError(f"array has shape {array.shape}; IDX dimensions must be < 2**32")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).reshape(-1).view(np.uint8)

    with atomic_write(path) as f:
        if compress:
            # mtime=0 and no file name: the same array gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
                g.write(header)
                g.write(data)  # type: ignore[arg-type]  # (a buffer; stubs disagree)
        else:
            f.write(header)
            f.write(data)
