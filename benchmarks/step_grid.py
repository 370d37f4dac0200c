"""Side-by-side training-step grid, outside asv (the cases of bench_step_grid.py).

    python benchmarks/step_grid.py [--rounds 15] [--quick] [--contention]

For each case the native variants (1 and 2 threads) run in one child process and the
NumPy reference's (1 and 2 BLAS threads) in another, one after the other; inside each,
the two thread counts are built once and timed in interleaved rounds, so a burst of load
on this shared machine hits both alike.  Each round times a block of calls and the
figure is the median over rounds of the per-call time (us).  The reference gets exactly
n BLAS threads through threadpoolctl.  Separate processes because OpenBLAS's workers
spin for a while after a 2-thread GEMM: in one process with the native steps, NumPy's
spinning BLAS worker held the second core while gdcore's team wanted it (a
784-256-128-10 batch-512 step then ran at 0.9-1.0x one thread instead of 1.6x).
``team%`` is the share of the timed 2-thread native steps that the stall guard let the
team run ("-": the step never splits at this size); a low figure means the guard sent
steps to one thread because threaded steps were slow -- on a shared VM, usually because
the host took the second vCPU.  ``--contention`` instead measures the stall bound: the mean time of a 2-thread native
step while a busy process is pinned to one core, against the mean of a quiet 1-thread
step, and beside 1-thread steps of a twin net alternating with it under the same busy
process.  Run it once as is and once under
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` (the kernel OpenBLAS picks is printed).
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from benchmarks.bench_step_grid import (BATCHES, DTYPES, NETS, OPTIMIZERS,  # noqa: E402
                                        blas_limits, make_case)


def _block(net, opt, X, T, kwargs, calls):
    start = time.perf_counter()
    for _ in range(calls):
        net.train_step(X, T, opt, **kwargs)
    return (time.perf_counter() - start) / calls


def _calls_for(seconds_per_call):
    return max(1, min(200, int(0.01 / max(seconds_per_call, 1e-7))))


def _time_variants(backend, net_name, batch, opt_name, dtype, rounds):
    """Median us per call of ``backend`` on 1 and 2 threads, interleaved rounds."""
    variants = [1, 2]
    cases = {}
    for n in variants:
        with blas_limits(n):
            case = make_case(backend, net_name, batch, opt_name, dtype)
            kw = {"n_threads": n} if backend == "native" else {}
            t = _block(*case, kw, 3)
        cases[n] = (case, kw, _calls_for(t))
    times = {n: [] for n in variants}
    before = _guard_counts(cases[2][0][0])
    for _ in range(rounds):
        for n in variants:
            case, kw, calls = cases[n]
            with blas_limits(n):
                times[n].append(_block(*case, kw, calls))
    after = _guard_counts(cases[2][0][0])
    result = {n: statistics.median(times[n]) * 1e6 for n in variants}
    team, solo = (a - b for a, b in zip(after, before))
    result["team"] = 100.0 * team / (team + solo) if team + solo else None
    return result


def _guard_counts(net):
    """(team, solo) steps of a native net's stall guard so far; (0, 0) for others."""
    workspace = getattr(net, "_workspace", None)
    if workspace is None or not hasattr(workspace, "stall_guard"):
        return 0, 0
    state = workspace.stall_guard()
    return state["team_steps"], state["solo_steps"]


def _child(args):
    net_name, batch, opt_name, dtype = args.child[1:]
    med = _time_variants(args.child[0], net_name, int(batch), opt_name, dtype, args.rounds)
    print(json.dumps([med[1], med[2], med["team"]]))


def grid(args):
    print(f"{'case':42s} {'nat1T':>8s} {'nat2T':>8s} {'ref1T':>8s} {'ref2T':>8s} "
          f"{'2T/1T':>6s} {'ref2T/nat2T':>11s} {'team%':>6s}")
    batches = [32, 512] if args.quick else BATCHES
    for net_name in NETS:
        for batch in batches:
            for opt_name in OPTIMIZERS:
                for dtype in DTYPES:
                    med = {}
                    for backend in ("native", "reference"):
                        out = subprocess.run(
                            [sys.executable, __file__, "--rounds", str(args.rounds),
                             "--child", backend, net_name, str(batch), opt_name, dtype],
                            check=True, capture_output=True, text=True).stdout
                        med[backend] = json.loads(out.strip().splitlines()[-1])
                    (n1, n2, team), (r1, r2, _) = med["native"], med["reference"]
                    name = f"{net_name} B{batch} {opt_name} {dtype}"
                    team = "-" if team is None else f"{team:.0f}"
                    print(f"{name:42s} {n1:8.1f} {n2:8.1f} {r1:8.1f} {r2:8.1f} "
                          f"{n1 / n2:6.2f} {r2 / n2:11.2f} {team:>6s}", flush=True)


def contention(args):
    cases = [("784-256-128-10_relu", 32, "adam", "float32"),
             ("784-256-128-10_relu", 128, "sgd", "float32"),
             ("784-256-128-10_relu", 512, "sgd", "float32"),
             ("784-15-10_sigmoid", 512, "sgd", "float32")]
    print(f"{'case':42s} {'quiet 1T':>9s} {'busy 2T':>9s} {'busy 1T':>9s} {'ratio':>6s} "
          f"{'2T/1T':>6s}   (means, us; ratio = busy 2T / quiet 1T, bound 1.2; "
          "2T/1T: both busy, interleaved)")
    for net_name, batch, opt_name, dtype in cases:
        with blas_limits(1):
            # one net per thread count, so each keeps its own stall-guard state; the
            # busy 2-thread and 1-thread steps alternate, so both see the same load
            one = make_case("native", net_name, batch, opt_name, dtype)
            two = make_case("native", net_name, batch, opt_name, dtype)
            calls = _calls_for(_block(*one, {"n_threads": 1}, 3))
            n = max(200, calls * 20)
            quiet = statistics.mean(_block(*one, {"n_threads": 1}, 1) for _ in range(n))
            busy = subprocess.Popen([sys.executable, "-c",
                                     "import os; os.sched_setaffinity(0, {1})\n"
                                     "while True: pass"])
            busy1, busy2 = [], []
            try:
                time.sleep(0.3)
                for _ in range(n):
                    busy2.append(_block(*two, {"n_threads": 2}, 1))
                    busy1.append(_block(*one, {"n_threads": 1}, 1))
            finally:
                busy.kill()
                busy.wait()
        busy1, busy2 = statistics.mean(busy1), statistics.mean(busy2)
        name = f"{net_name} B{batch} {opt_name} {dtype}"
        print(f"{name:42s} {quiet * 1e6:9.1f} {busy2 * 1e6:9.1f} {busy1 * 1e6:9.1f} "
              f"{busy2 / quiet:6.2f} {busy2 / busy1:6.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15,
                        help="timed rounds per variant (>= 1; default 15)")
    parser.add_argument("--quick", action="store_true", help="batch 32 and 512 only")
    parser.add_argument("--contention", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.child:
        return _child(args)
    from threadpoolctl import threadpool_info
    for info in threadpool_info():
        print(f"# {info['internal_api']} {info.get('version')} "
              f"{info.get('architecture', '')} threads={info['num_threads']} "
              f"{os.path.basename(info['filepath'])}")
    print(f"# OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}; load {os.getloadavg()}")
    contention(args) if args.contention else grid(args)


if __name__ == "__main__":
    main()
