"""Anonymous memory of training on (and predicting from) a memory-mapped data set.

    python benchmarks/memmap_memory.py --gib 2 [--path /tmp/x.npy] [--keep]

Writes a float32 (n, 784) .npy file of the requested size (in blocks, through a
memmap), opens it with ``np.load(mmap_mode="r")``, then trains one epoch of a
784-64-10 network with mini-batches of 256 and predicts on the whole file.  A thread
samples ``RssAnon`` from /proc/self/status every 2 ms (the mapped file's pages are
file-backed and not counted there); the report is the peak growth over the baseline
after import.  Prints one JSON line.  Linux only.
"""
import argparse
import json
import os
import threading
import time

import numpy as np

N_IN = 784


def rss_anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakSampler:
    """The largest RssAnon seen while the block runs."""

    def __init__(self, interval=0.002):
        self.interval = interval

    def __enter__(self):
        self.peak = rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())


def write_file(path, n_samples, block=32768):
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_samples, N_IN))
    for start in range(0, n_samples, block):
        stop = min(start + block, n_samples)
        X[start:stop] = np.random.default_rng(start).random((stop - start, N_IN),
                                                            dtype=np.float32)
    X.flush()
    del X


def measure(path, n_samples, batch_size=256):
    import gdcore as gd
    if not os.path.exists(path):
        write_file(path, n_samples)
    X = np.load(path, mmap_mode="r")
    T = np.arange(X.shape[0], dtype=np.int64) % 10
    net = gd.MLP([N_IN, 64, 10], seed=0)
    optimizer = gd.optim.SGD(lr=0.01)
    net.fit(X[:batch_size], T[:batch_size], epochs=1, batch_size=batch_size,
            optimizer=optimizer, progress=False)              # workspace, imports
    base = rss_anon()
    started = time.perf_counter()
    with PeakSampler() as fit_peak:
        net.fit(X, T, epochs=1, batch_size=batch_size, optimizer=optimizer, progress=False)
    fit_seconds = time.perf_counter() - started
    with PeakSampler() as predict_peak:
        labels = net.predict(X)
    return {"file_mib": X.nbytes / 2**20, "n_samples": int(X.shape[0]),
            "baseline_anon_mib": base / 2**20,
            "fit_peak_growth_mib": (fit_peak.peak - base) / 2**20,
            "fit_peak_anon_mib": fit_peak.peak / 2**20,
            "predict_peak_growth_mib": (predict_peak.peak - base) / 2**20,
            "fit_seconds": fit_seconds, "predicted": int(labels.shape[0])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--path", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    n_samples = int(args.gib * 2**30 / (4 * N_IN))
    path = args.path or f"/tmp/gdcore_memmap_{n_samples}.npy"
    try:
        print(json.dumps(measure(path, n_samples)))
    finally:
        if not args.keep and os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    main()
