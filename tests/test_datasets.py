import gzip
import os
import struct

import numpy as np
import pytest

from gdcore import datasets as ds

CLASSIFIERS = {
    "spirals": ds.spirals,
    "moons": ds.moons,
}
GENERATORS = dict(CLASSIFIERS, sine=ds.sine)
IDX_DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


def test_seven_points():
    x, y = ds.seven_points()
    assert x.shape == (7, 1) and y.shape == (7,)
    assert x.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_array_equal(x[:, 0], [2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0])
    np.testing.assert_array_equal(y, [1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7])
    x[0, 0] = y[0] = -1.0
    x2, y2 = ds.seven_points()
    assert x2[0, 0] == 2.4 and y2[0] == 1.7


# ---------------------------------------------------------------------------
# Synthetic generators

@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("n_samples", [1, 2, 7, 100])
def test_shapes_and_dtypes(name, n_samples):
    X, y = GENERATORS[name](n_samples=n_samples)
    n_features = 1 if name == "sine" else 2
    assert X.shape == (n_samples, n_features)
    assert X.dtype == np.float64 and X.flags.c_contiguous
    assert y.shape == (n_samples,)
    assert y.dtype == (np.float64 if name == "sine" else np.int64)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_deterministic_per_seed(name):
    gen = GENERATORS[name]
    X1, y1 = gen(n_samples=50, seed=3)
    X2, y2 = gen(n_samples=50, seed=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, y3 = gen(n_samples=50, seed=4)
    assert not np.array_equal(X1, X3)
    X4, y4 = gen(n_samples=50, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(X1, X4)
    np.testing.assert_array_equal(y1, y4)


@pytest.mark.parametrize("n_samples, n_classes", [(1, 2), (2, 2), (300, 3), (301, 3),
                                                  (302, 3), (17, 5), (40, 2)])
def test_spirals_balance_and_labels(n_samples, n_classes):
    X, y = ds.spirals(n_samples=n_samples, n_classes=n_classes)
    assert y.min() >= 0 and y.max() < n_classes
    counts = np.bincount(y, minlength=n_classes)
    assert counts.sum() == n_samples
    assert counts.max() - counts.min() <= 1
    assert np.all(np.diff(counts) <= 0)


@pytest.mark.parametrize("n_samples", [1, 2, 3, 100, 101])
def test_moons_balance_and_labels(n_samples):
    X, y = ds.moons(n_samples=n_samples)
    assert set(np.unique(y)) <= {0, 1}
    assert np.sum(y == 0) == n_samples // 2
    assert np.sum(y == 1) == n_samples - n_samples // 2


def test_spirals_geometry_without_noise():
    n_per, k = 40, 4
    X, y = ds.spirals(n_samples=n_per * k, n_classes=k, noise=0.0, shuffle=False)
    np.testing.assert_array_equal(y, np.repeat(np.arange(k), n_per))
    r = np.hypot(X[:, 0], X[:, 1])
    for c in range(k):
        np.testing.assert_allclose(r[y == c], np.linspace(0, 1, n_per), atol=1e-12)
    # The arms are rotated copies of each other by 2 pi / k.
    angle = 2 * np.pi / k
    # sin(t + a) = x cos a + y sin a, cos(t + a) = y cos a - x sin a (for r = 1).
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(X[y == 0] @ rot, X[y == 1], atol=1e-12)


def test_moons_geometry_without_noise():
    X, y = ds.moons(n_samples=101, noise=0.0, shuffle=False)
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*outer.T), 1.0, rtol=1e-12)
    assert np.all(outer[:, 1] >= 0)
    np.testing.assert_allclose(np.hypot(1 - inner[:, 0], 0.5 - inner[:, 1]), 1.0, rtol=1e-12)
    assert np.all(inner[:, 1] <= 0.5)


def test_sine_without_noise():
    X, y = ds.sine(n_samples=200, noise=0.0)
    assert np.all(np.abs(X) <= np.pi)
    assert X.min() < -2.5 and X.max() > 2.5
    np.testing.assert_array_equal(y, np.sin(X[:, 0]))


@pytest.mark.parametrize("noise", [0.05, 0.5])
def test_noise_level(noise):
    X, y = ds.sine(n_samples=4000, noise=noise, seed=1)
    assert np.std(y - np.sin(X[:, 0])) == pytest.approx(noise, rel=0.1)
    X0, _ = ds.moons(n_samples=4000, noise=0.0, seed=1, shuffle=False)
    X1, _ = ds.moons(n_samples=4000, noise=noise, seed=1, shuffle=False)
    assert np.std(X1 - X0) == pytest.approx(noise, rel=0.1)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_shuffle(name):
    X, y = CLASSIFIERS[name](n_samples=60, shuffle=False)
    assert np.all(np.diff(y) >= 0)
    Xs, ys = CLASSIFIERS[name](n_samples=60)
    assert np.any(np.diff(ys) < 0)
    # The noise is drawn before shuffling: the same rows, in another order.
    a = np.column_stack([X, y])
    b = np.column_stack([Xs, ys])
    np.testing.assert_array_equal(a[np.lexsort(a.T)], b[np.lexsort(b.T)])


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_samples": 0}, ValueError, "n_samples must be >= 1"),
    ({"n_samples": -3}, ValueError, "n_samples must be >= 1"),
    ({"n_samples": 2.5}, TypeError, "n_samples must be an integer"),
    ({"n_samples": True}, TypeError, "n_samples must be an integer"),
    ({"noise": -0.1}, ValueError, "noise must be >= 0"),
    ({"noise": np.nan}, ValueError, "noise must be finite"),
    ({"noise": np.inf}, ValueError, "noise must be finite"),
    ({"noise": "x"}, TypeError, "noise must be a real number"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": "a"}, TypeError, "seed must be an integer"),
])
def test_generators_reject_bad_arguments(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GENERATORS[name](**kwargs)


@pytest.mark.parametrize("n_classes, exc, match", [
    (1, ValueError, "n_classes must be >= 2"),
    (0, ValueError, "n_classes must be >= 2"),
    (2.0, TypeError, "n_classes must be an integer"),
])
def test_spirals_reject_bad_n_classes(n_classes, exc, match):
    with pytest.raises(exc, match=match):
        ds.spirals(n_classes=n_classes)


# ---------------------------------------------------------------------------
# IDX files

def idx_bytes(code, shape, payload):
    """An IDX file built from the format description, independently of save_idx."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def write(path, data):
    path.write_bytes(data)
    return path


def sample_array(dtype, ndim, seed=0):
    rng = np.random.default_rng(seed)
    shape = (3, 2, 4, 1)[:ndim - 1] + (5,)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        a = rng.standard_normal(shape).astype(dtype) * 1e3
        a.flat[0] = np.finfo(dtype).max
        a.flat[-1] = np.finfo(dtype).tiny
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
        a.flat[0] = info.min
        a.flat[-1] = info.max
    return a


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_idx_round_trip(tmp_path, dtype, ndim, compress):
    a = sample_array(dtype, ndim)
    # The name says the opposite of the content: detection is by magic bytes.
    path = tmp_path / ("data.idx" if compress else "data.idx.gz")
    ds.save_idx(path, a, compress=compress)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == compress
    b = ds.load_idx(path)
    assert b.dtype == a.dtype and b.dtype.isnative
    assert b.shape == a.shape
    assert b.flags.writeable and b.flags.c_contiguous
    np.testing.assert_array_equal(b, a)
    assert os.listdir(tmp_path) == [path.name]


def test_idx_layout_matches_format(tmp_path):
    a = np.array([[1, -2, 300], [4, 5, -32768]], dtype=np.int16)
    expected = idx_bytes(0x0B, (2, 3), struct.pack(">6h", 1, -2, 300, 4, 5, -32768))
    ds.save_idx(tmp_path / "a.idx", a)
    assert (tmp_path / "a.idx").read_bytes() == expected
    ds.save_idx(tmp_path / "a.idx.gz", a)
    assert gzip.decompress((tmp_path / "a.idx.gz").read_bytes()) == expected
    ds.save_idx(tmp_path / "b.idx", a.astype(">i2"))
    assert (tmp_path / "b.idx").read_bytes() == expected
    ds.save_idx(tmp_path / "c.idx", np.asfortranarray(a))
    assert (tmp_path / "c.idx").read_bytes() == expected

    f64 = write(tmp_path / "f.idx", idx_bytes(0x0E, (3,), struct.pack(">3d", 0.5, -2.0, 1e300)))
    np.testing.assert_array_equal(ds.load_idx(f64), [0.5, -2.0, 1e300])
    u8 = write(tmp_path / "u.idx", idx_bytes(0x08, (2, 2), bytes([0, 255, 7, 128])))
    np.testing.assert_array_equal(ds.load_idx(u8), [[0, 255], [7, 128]])
    assert ds.load_idx(u8).dtype == np.uint8


def test_idx_empty_and_str_paths(tmp_path):
    a = np.zeros((0, 3), dtype=np.float32)
    ds.save_idx(str(tmp_path / "e.idx"), a)
    b = ds.load_idx(str(tmp_path / "e.idx"))
    assert b.shape == (0, 3) and b.dtype == np.float32


def test_idx_gzip_default_from_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    ds.save_idx(tmp_path / "a.gz", a)
    ds.save_idx(tmp_path / "a.idx", a)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.idx").read_bytes()[:2] == b"\x00\x00"
    ds.save_idx(tmp_path / "b.gz", a, compress=False)
    assert (tmp_path / "b.gz").read_bytes()[:2] == b"\x00\x00"


GOOD = idx_bytes(0x0C, (2, 3), struct.pack(">6i", *range(6)))
HUGE = idx_bytes(0x0E, (2 ** 32 - 1, 2 ** 32 - 1), b"\x00" * 16)

BAD_FILES = [
    ("bad_magic", b"\x01\x00" + GOOD[2:], "bad magic"),
    ("bad_magic2", b"\x00\x07" + GOOD[2:], "bad magic"),
    ("unknown_type", GOOD[:2] + b"\x0a" + GOOD[3:], "unknown type code 0x0A"),
    ("unknown_type2", GOOD[:2] + b"\x00" + GOOD[3:], "unknown type code 0x00"),
    ("zero_dims", b"\x00\x00\x08\x00" + b"\x00" * 8, "number of dimensions is 0"),
    ("empty", b"", "truncated header"),
    ("short_magic", b"\x00\x00\x08", "truncated header"),
    ("short_dims", GOOD[:9], "truncated header"),
    ("short_dims2", b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated header"),
    ("short_data", GOOD[:-1], "data shorter than the header says"),
    ("no_data", GOOD[:12], "data shorter than the header says"),
    ("huge_header", HUGE, "data shorter than the header says"),
    ("trailing", GOOD + b"\x00", "trailing bytes"),
    ("trailing_many", GOOD + GOOD, "trailing bytes"),
]


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("label, data, match", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_idx_rejects_malformed(tmp_path, label, data, match, compress):
    path = write(tmp_path / f"{label}.idx",
                 gzip.compress(data, mtime=0) if compress else data)
    with pytest.raises(ValueError, match=match) as info:
        ds.load_idx(path)
    assert path.name in str(info.value)


def test_idx_good_bytes_load(tmp_path):
    for data in (GOOD, gzip.compress(GOOD)):
        np.testing.assert_array_equal(ds.load_idx(write(tmp_path / "g", data)),
                                      np.arange(6).reshape(2, 3))


def corrupt_gzip_variants():
    z = gzip.compress(idx_bytes(0x0C, (4000,), np.arange(4000, dtype=">i4").tobytes()),
                      mtime=0)
    mid = len(z) // 2
    flipped = bytearray(z)
    for i in range(mid, mid + 8):
        flipped[i] ^= 0xFF
    bad_crc = bytearray(z)
    bad_crc[-8] ^= 0x01
    bad_len = bytearray(z)
    bad_len[-4] ^= 0x01
    bad_method = bytearray(z)
    bad_method[2] = 7
    return [
        ("cut_half", z[:mid]),
        ("cut_trailer", z[:-4]),
        ("magic_only", z[:2]),
        ("header_only", z[:10]),
        ("flipped", bytes(flipped)),
        ("bad_crc", bytes(bad_crc)),
        ("bad_length", bytes(bad_len)),
        ("bad_method", bytes(bad_method)),
        ("garbage_after", z + b"garbage"),
    ]


@pytest.mark.parametrize("label, data", corrupt_gzip_variants(),
                         ids=[v[0] for v in corrupt_gzip_variants()])
def test_idx_rejects_corrupt_gzip(tmp_path, label, data):
    path = write(tmp_path / f"{label}.bin", data)
    with pytest.raises(ValueError, match="gzip") as info:
        ds.load_idx(path)
    assert path.name in str(info.value)


def test_idx_missing_file_and_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.load_idx(tmp_path / "missing.idx")
    with pytest.raises(TypeError, match="path must be"):
        ds.load_idx(3)
    with pytest.raises(TypeError, match="path must be"):
        ds.save_idx(None, np.zeros(2))


@pytest.mark.parametrize("array, compress, exc, match", [
    (np.zeros(3, dtype=np.int64), None, TypeError, "dtype uint8, int8"),
    (np.zeros(3, dtype=np.uint16), None, TypeError, "dtype uint8, int8"),
    (np.zeros(3, dtype=bool), None, TypeError, "dtype uint8, int8"),
    (np.zeros(3, dtype=np.complex128), None, TypeError, "dtype uint8, int8"),
    (np.float64(1.0), None, ValueError, "1 to 255 dimensions"),
    (np.zeros(3, dtype=np.uint8), "yes", TypeError, "compress must be"),
])
def test_save_idx_rejects(tmp_path, array, compress, exc, match):
    with pytest.raises(exc, match=match):
        ds.save_idx(tmp_path / "x.idx", array, compress=compress)
    assert os.listdir(tmp_path) == []


def test_save_idx_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / "a.idx"
    ds.save_idx(path, np.arange(3, dtype=np.uint8))
    ds.save_idx(path, np.arange(5, dtype=np.int32))
    np.testing.assert_array_equal(ds.load_idx(path), np.arange(5))
    assert os.listdir(tmp_path) == ["a.idx"]
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("simulated failure")

    monkeypatch.setattr(ds.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated failure"):
        ds.save_idx(path, np.arange(7, dtype=np.int8))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.idx"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_idx_respects_umask(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "p.idx"
    ds.save_idx(path, np.zeros(2, dtype=np.uint8))
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
