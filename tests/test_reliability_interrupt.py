"""Ctrl-C: a real SIGINT sent at random times to a process training with ``fit`` or a
``train_step`` loop stops it promptly with KeyboardInterrupt and leaves the network at
a whole step (train_step) or a whole epoch (fit), so that training resumed from there
equals an uninterrupted run bitwise."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import gdcore as gd

# the directory that holds the gdcore under test (installed, or an in-place build)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(gd.__file__)))

# The child trains, and on KeyboardInterrupt resumes to the planned total and saves the
# result; the parent compares it with an uninterrupted run of the same total.
CHILD = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    import gdcore as gd
    mode, out, n_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, 64)).astype(np.float32)
    y = rng.integers(0, 5, n_rows)
    net = gd.MLP([64, 128, 5], seed=0, dropout=0.1)
    opt = gd.optim.Adam(lr=1e-3)
    EPOCHS, STEPS = 6, int(sys.argv[4])
    interrupted = None
    print("ready", flush=True)
    started = time.perf_counter()
    # a SIGINT that lands after training (the parent cannot know when it ends) is
    # caught like the others, then ignored once training is complete
    k = 0
    while True:
        try:
            if mode == "fit":
                net.fit(X, y, epochs=EPOCHS - net.epochs_trained, batch_size=16,
                        optimizer=opt, progress=False)
            else:
                while k < STEPS:
                    rows = slice((k * 16) % n_rows, (k * 16) % n_rows + 16)
                    net.train_step(X[rows], y[rows], opt)
                    k += 1
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            break
        except KeyboardInterrupt:
            interrupted = time.perf_counter()
            if mode == "fit":
                # fit stopped at a whole epoch, with the bookkeeping matching it
                assert net.epochs_trained == len(net.history) and opt.step_count == \
                    net.epochs_trained * -(-n_rows // 16), (net.epochs_trained, opt.step_count)
            else:
                # the step in flight either completed with its bookkeeping or not at all
                k = opt.step_count
    np.savez(out, params=net.params, steps=opt.step_count, epochs=net.epochs_trained,
             interrupted=interrupted is not None, seconds=time.perf_counter() - started,
             **{"state_" + k: v for k, v in opt.state.items()})
""")


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["GDCORE_THREADS_TEST"] = "1"
    return env


def _run(tmp_path, mode, n_rows, delay=None, name="out", steps=2000):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / f"{name}.npz"
    proc = subprocess.Popen([sys.executable, str(script), mode, str(out), str(n_rows),
                             str(steps)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_child_env())
    assert proc.stdout.readline().strip() == "ready"
    if delay is not None:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("mode", ["fit", "train_step"])
def test_sigint_at_random_times_then_resume_is_bitwise_exact(tmp_path, mode):
    reference = _run(tmp_path, mode, 8192, name="reference")
    duration = float(reference.pop("seconds"))
    rng = np.random.default_rng(7 if mode == "fit" else 8)
    hit = 0
    for attempt in range(3):
        got = _run(tmp_path, mode, 8192, delay=float(rng.uniform(0.05, 0.5) * duration),
                   name=f"run{attempt}")
        hit += bool(got["interrupted"])
        for key in reference:
            if key not in ("interrupted", "seconds"):
                np.testing.assert_array_equal(got[key], reference[key],
                                              err_msg=f"{mode} attempt {attempt}: {key}")
    assert hit >= 1, "no SIGINT landed during training; the test proved nothing"


LATENCY = textwrap.dedent("""
    import signal, sys, threading, time, os
    import numpy as np
    import gdcore as gd
    rng = np.random.default_rng(0)
    n = int(sys.argv[1])
    X = rng.standard_normal((n, 256)).astype(np.float32)
    y = rng.integers(0, 10, n)
    net = gd.MLP([256, 256, 10], seed=0)
    opt = gd.optim.Adam()
    net.fit(X[:2048], y[:2048], epochs=1, batch_size=32, optimizer=opt, progress=False)
    t0 = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=32, optimizer=opt, progress=False)
    epoch = time.perf_counter() - t0
    before = net.params.copy(), opt.step_count, net.epochs_trained
    sent = []
    def interrupt():
        time.sleep(epoch / 2)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt).start()
    try:
        net.fit(X, y, epochs=1, batch_size=32, optimizer=opt, progress=False)
        print("not interrupted")
    except KeyboardInterrupt:
        latency = time.perf_counter() - sent[0]
        assert np.array_equal(net.params, before[0])
        assert (opt.step_count, net.epochs_trained) == before[1:]
        print(f"epoch {epoch:.3f} s latency {latency * 1000:.1f} ms")
""")


def test_sigint_stops_a_long_native_epoch_promptly(tmp_path):
    script = tmp_path / "latency.py"
    script.write_text(LATENCY)
    n = int(os.environ.get("GDCORE_LATENCY_ROWS", "40000"))
    result = subprocess.run([sys.executable, str(script), str(n)], capture_output=True,
                            text=True, env=_child_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("epoch"), line
    epoch, latency_ms = float(line.split()[1]), float(line.split()[4])
    print(line)
    # stops well before the epoch ends (the loop checks for signals every 5 ms)
    assert latency_ms < 500 and latency_ms < 1000 * epoch / 2
