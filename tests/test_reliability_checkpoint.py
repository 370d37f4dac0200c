"""Hostile checkpoint files: every malformed file is a ValueError naming the file and
the problem, found before anything sized by the metadata is allocated; saves clean up
the temporary files of killed saves."""
import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest

import gdcore as gd


def _checkpoint(tmp_path, net=None):
    net = net or gd.MLP([3, 4, 2], seed=0)
    X = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    net.fit(X, np.arange(8) % 2, epochs=2, progress=False)
    path = tmp_path / "good.npz"
    net.save(path)
    return path


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _meta_of(members):
    return json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes().decode())


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _write(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _with_meta(members, meta):
    out = dict(members)
    out["meta.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return out


def _expect_invalid(path, match):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as info:
            gd.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 20 << 20, f"loading a hostile file allocated {peak} bytes"


def test_metadata_claiming_a_huge_network_is_rejected_without_allocating(tmp_path):
    members = _members(_checkpoint(tmp_path))
    meta = _meta_of(members)
    for i, sizes in enumerate([[8000, 8000, 2], [10**6, 10**6], [10**12, 2], [2**40, 2**40]]):
        meta["network"]["layer_sizes"] = sizes
        path = _write(tmp_path / f"huge{i}.npz", _with_meta(members, meta))
        _expect_invalid(path, "params|layer_sizes")


def test_params_header_lying_about_its_size_is_rejected(tmp_path):
    members = _members(_checkpoint(tmp_path))
    meta = _meta_of(members)
    meta["network"]["layer_sizes"] = [3000, 3000, 2]
    n = 3000 * 3000 + 3000 + 3000 * 2 + 2
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (n,)})
    members = _with_meta(members, meta)
    members["params.npy"] = b"\x93NUMPY" + header.getvalue()[6:] + b"\0" * 64
    _expect_invalid(_write(tmp_path / "liar.npz", members), "params")


def test_only_expected_members_are_read(tmp_path):
    members = _members(_checkpoint(tmp_path))
    members["extra.npy"] = b"\0" * (64 << 20)          # 64 MiB, compresses to ~64 KiB
    path = _write(tmp_path / "extra.npz", members, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 1 << 20
    tracemalloc.start()
    net = gd.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20 and net.epochs_trained == 2


def test_deep_and_oversized_metadata_are_rejected(tmp_path):
    members = _members(_checkpoint(tmp_path))
    deep = "[" * 100_000 + "]" * 100_000
    bad = dict(members)
    bad["meta.npy"] = _npy(np.frombuffer(deep.encode(), np.uint8))
    _expect_invalid(_write(tmp_path / "deep.npz", bad), "metadata|not a gdcore")
    meta = _meta_of(members)
    nested = 0
    for _ in range(40):
        nested = [nested]
    meta["lr_schedule"] = nested
    _expect_invalid(_write(tmp_path / "nested.npz", _with_meta(members, meta)), "nested")


@pytest.mark.parametrize("corrupt", [
    "no_meta", "no_params", "object_params", "2d_params", "wrong_dtype", "state_missing",
    "state_bad_name", "bad_json", "meta_not_dict", "bad_rng", "bad_history", "bad_sizes",
    "bad_dtype", "unknown_optimizer", "bad_step", "bzip2",
])
def test_malformed_checkpoints_raise_value_error_naming_the_file(tmp_path, corrupt):
    members = _members(_checkpoint(tmp_path))
    meta = _meta_of(members)
    compression = zipfile.ZIP_STORED
    if corrupt == "no_meta":
        del members["meta.npy"]
    elif corrupt == "no_params":
        del members["params.npy"]
    elif corrupt == "object_params":
        buf = io.BytesIO()
        np.save(buf, np.array([{}], dtype=object), allow_pickle=True)
        members["params.npy"] = buf.getvalue()
    elif corrupt == "2d_params":
        members["params.npy"] = _npy(np.zeros((2, 13), np.float32))
    elif corrupt == "wrong_dtype":
        members["params.npy"] = _npy(np.zeros(26, np.float64))
    elif corrupt == "state_missing":
        del members["optimizer/exp_avg.npy"]
    elif corrupt == "state_bad_name":
        meta["optimizer"]["state"] = ["../../etc/passwd"]
        members = _with_meta(members, meta)
    elif corrupt == "bad_json":
        members["meta.npy"] = _npy(np.frombuffer(b"{not json", np.uint8))
    elif corrupt == "meta_not_dict":
        members["meta.npy"] = _npy(np.frombuffer(b"[1, 2]", np.uint8))
    elif corrupt == "bad_rng":
        meta["rng"] = {"bit_generator": "PCG64", "state": "x"}
        members = _with_meta(members, meta)
    elif corrupt == "bad_history":
        meta["history"]["loss"] = meta["history"]["loss"][:1]
        members = _with_meta(members, meta)
    elif corrupt == "bad_sizes":
        meta["network"]["layer_sizes"] = [3, -4, 2]
        members = _with_meta(members, meta)
    elif corrupt == "bad_dtype":
        meta["network"]["dtype"] = "complex128"
        members = _with_meta(members, meta)
    elif corrupt == "unknown_optimizer":
        meta["optimizer"]["class"] = "os.system"
        members = _with_meta(members, meta)
    elif corrupt == "bad_step":
        meta["optimizer"]["step"] = 2**70
        members = _with_meta(members, meta)
    elif corrupt == "bzip2":
        compression = zipfile.ZIP_BZIP2
    _expect_invalid(_write(tmp_path / f"{corrupt}.npz", members, compression),
                    "not a valid gdcore checkpoint")


def test_truncations_and_bit_flips_never_escape_as_other_errors(tmp_path):
    data = _checkpoint(tmp_path).read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    for i in range(150):
        if i % 3 == 0:
            content = data[: int(rng.integers(0, len(data)))]
        else:
            content = bytearray(data)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 4))):
                content[pos] ^= int(rng.integers(1, 256))
            content = bytes(content)
        bad.write_bytes(content)
        try:
            gd.load(bad)
        except ValueError as err:
            assert str(bad) in str(err)


def test_a_save_removes_temporaries_of_killed_saves(tmp_path):
    net = gd.MLP([3, 4, 2], seed=0)
    path = tmp_path / "ck.npz"
    # a process that has exited: its pid names a temporary nobody will finish
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".ck.npz.{dead}.{'a' * 32}.tmp"
    stale.write_bytes(b"\0" * 1000)
    alive = tmp_path / f".ck.npz.{os.getppid()}.{'b' * 32}.tmp"     # a running writer
    alive.write_bytes(b"\0")
    other = tmp_path / f".other.npz.{dead}.{'c' * 32}.tmp"          # another path's
    other.write_bytes(b"\0")
    net.save(path)
    assert not stale.exists() and alive.exists() and other.exists()
    assert gd.load(path).n_params == net.n_params


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import gdcore as gd
    from gdcore import _io
    net = gd.MLP([200, 400, 300, 10], seed=0)
    original = os.fsync
    def die(fd):
        os.kill(os.getpid(), signal.SIGKILL)
    os.fsync = die                  # killed after writing, before the rename
    net.save(sys.argv[1])
""")


def test_kill_during_save_leaves_the_old_file_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "ck.npz"
    net = gd.MLP([200, 400, 300, 10], seed=1)
    net.save(path)
    script = tmp_path / "killed.py"
    script.write_text(KILLED_SAVE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(gd.__file__)))
    proc = subprocess.run([sys.executable, str(script), str(path)], env=env)
    assert proc.returncode == -9
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert len(leftovers) == 1
    np.testing.assert_array_equal(gd.load(path).params, net.params)
    net.save(path)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
