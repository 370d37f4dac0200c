"""Hypothesis fuzzing of gdcore's public entry points, in subprocesses.

Each group (kernels against their reference twins, optimizers, the network's training
and inference calls, the toolkit) runs in its own interpreter (tests/fuzz_worker.py),
so that a crash fails the test rather than the test run.  The groups run in parallel.
``GDCORE_FUZZ_EXAMPLES`` sets the hypothesis examples per group (default 200; each
example runs its case 5 times with different array contents, so the default run makes
about 5,000 calls); ``GDCORE_FUZZ_SEED`` the seed (default 0).
"""
import json
import os
import subprocess
import sys

import pytest

import gdcore as gd

pytest.importorskip("hypothesis")

HERE = os.path.dirname(os.path.abspath(__file__))
# the directory that holds the gdcore under test (installed, or an in-place build)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(gd.__file__)))
GROUPS = ("kernels", "optim", "network", "toolkit")


def test_fuzz_public_entry_points():
    n = int(os.environ.get("GDCORE_FUZZ_EXAMPLES", "200"))
    seed = int(os.environ.get("GDCORE_FUZZ_SEED", "0"))
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    procs = {g: subprocess.Popen([sys.executable, os.path.join(HERE, "fuzz_worker.py"), g,
                                  str(n), str(seed)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
             for g in GROUPS}
    totals = {"cases": 0, "unexpected": 0, "wrong": 0, "state_changed": 0, "accepted": 0}
    problems = []
    for group, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        # a crash of the interpreter (segfault, abort, a thread library exiting) is a
        # non-zero status without the summary line
        assert proc.returncode == 0, f"{group}: exit status {proc.returncode}\n{err[-3000:]}"
        summary = json.loads(out.strip().splitlines()[-1])
        for key in totals:
            totals[key] += summary[key]
        problems += [f"{group}: {e}" for e in summary["examples"]]
    print(f"fuzz: {totals}")
    assert totals["cases"] >= 4 * n
    assert totals["accepted"] > totals["cases"] // 10, "the fuzzer rarely made valid calls"
    assert (totals["unexpected"], totals["wrong"], totals["state_changed"]) == (0, 0, 0), \
        "\n".join(problems)
