"""The gdcore command: each subcommand runs and exits 0 (the demo with a small setting)."""
import os
import subprocess
import sys
import tempfile

import pytest

import gdcore as gd
from gdcore import cli


def _run(*args, timeout=300):
    """``python -m gdcore ...`` importing the same gdcore as this process, started
    outside the source tree (``-m`` puts the working directory first on the path)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(gd.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, "-m", "gdcore", *args], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=cwd)


def test_info_prints_the_configuration():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    assert f"gdcore {gd.__version__}" in proc.stdout and "threads:" in proc.stdout


def test_demo_runs_the_textbook_and_trains(tmp_path):
    pytest.importorskip("matplotlib")
    proc = _run("demo", "--epochs", "3", "--samples", "300", "--no-progress",
                "--plot", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "4.900, 4.802, 4.706" in out
    assert "held-out accuracy" in out and "faster" in out
    assert sorted(os.listdir(tmp_path)) == ["descent_quartic.png", "descent_x2.png",
                                            "rosenbrock_optimizers.png", "saddle_escape.png",
                                            "training_curves.png"]


def test_bench_quick_prints_the_table():
    proc = _run("bench", "--quick", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "native us" in lines[1] and "reference us" in lines[1]
    assert sum("train_step" in line for line in lines) == 3
    assert all(line.rstrip().endswith("x") or "-" in line[-12:] for line in lines[3:])


def test_bad_arguments_exit_with_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--epochs", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["frobnicate"])
