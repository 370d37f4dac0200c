"""The gdcore command: every subcommand, its errors, and the package basics around it."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import gdcore as gd
from gdcore import bench, cli, tour

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(gd.__file__)))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _run(*args, timeout=300, **kwargs):
    """``python -m gdcore ...`` importing the same gdcore as this process, started
    outside the source tree (``-m`` puts the working directory first on the path)."""
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, "-m", "gdcore", *args], capture_output=True,
                              text=True, timeout=timeout, env=_env(), cwd=cwd, **kwargs)


# ---- info, version, help, usage errors ----------------------------------------------

def test_info_prints_the_configuration_and_the_isa_build():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    assert f"gdcore {gd.__version__}" in proc.stdout and "threads:" in proc.stdout
    assert f"instruction set: {gd.kernels.ISA} build" in proc.stdout.splitlines()[1]


def test_info_into_a_closed_pipe_ends_as_sigpipe_without_a_traceback():
    # a real reader process that closes the pipe and exits before the first write, as
    # `head -1` does after its line
    read_end, write_end = os.pipe()
    reader = subprocess.Popen([sys.executable, "-c", "import os; os.close(0)"], stdin=read_end)
    os.close(read_end)
    assert reader.wait(timeout=60) == 0
    try:
        with tempfile.TemporaryDirectory() as cwd:
            proc = subprocess.run([sys.executable, "-m", "gdcore", "info"], stdout=write_end,
                                  stderr=subprocess.PIPE, text=True, env=_env(), cwd=cwd,
                                  timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
    assert proc.stderr == ""
    # the shell's status of a program ended by SIGPIPE (128 + 13)
    assert proc.returncode == 141


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"gdcore {gd.__version__}"


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "gdcore demo" in out and "gdcore bench" in out
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    assert all(name in out for name in tour.SECTIONS)


@pytest.mark.parametrize("argv, usage, message", [
    (["demo", "--epochs", "0"], "usage: gdcore demo", "--epochs: must be >= 1, got 0"),
    (["demo", "--samples", "10"], "usage: gdcore demo", "--samples: must be >= 100"),
    (["demo", "--section", "nope"], "usage: gdcore demo", "--section: invalid choice"),
    (["bench", "--threads", "x"], "usage: gdcore bench", "expected a whole number"),
    (["info", "--bogus"], "usage: gdcore", "unrecognized arguments: --bogus"),
    (["frobnicate"], "usage: gdcore", "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_print_the_commands_usage(capsys, argv, usage, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and message in err


def test_demo_plot_without_matplotlib_fails_before_any_work(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib fails
    monkeypatch.setattr(tour, "run", lambda *a, **k: pytest.fail("the tour ran"))
    target = tmp_path / "pictures"
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--plot", str(target)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: gdcore demo") and "--plot needs matplotlib" in err
    assert not target.exists()


def test_demo_mnist_folder_must_exist(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--mnist", str(tmp_path / "missing")])
    assert exc.value.code == 2 and "no such folder" in capsys.readouterr().err


# ---- the demo -----------------------------------------------------------------------

def test_demo_section_quartic_prints_settings_and_draws(tmp_path):
    pytest.importorskip("matplotlib")
    proc = _run("demo", "--section", "quartic", "--no-progress", "--plot", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "2. a local and a global minimum" in out and "1. y = x^2" not in out
    assert "lr = 0.01" in out and "|dy/dx| < 0.1" in out
    assert re.search(r"from x0 = \+4: x = \+0\.70\d\d.*converged after \d+ steps: the local", out)
    assert re.search(r"from x0 = -4: x = -1\.4\d\d\d.*converged after \d+ steps: the global", out)
    assert os.listdir(tmp_path) == ["descent_quartic.png"]


def test_demo_mnist_section_on_idx_files(tmp_path):
    X, y = gd.datasets.synthetic_digits(120, seed=3)
    images = np.round(X.reshape(-1, 28, 28) * 255).astype(np.uint8)
    gd.datasets.save_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:100])
    gd.datasets.save_idx(tmp_path / "train-labels-idx1-ubyte", y[:100].astype(np.uint8))
    gd.datasets.save_idx(tmp_path / "t10k-images-idx3-ubyte", images[100:])
    gd.datasets.save_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y[100:].astype(np.uint8))
    proc = _run("demo", "--section", "mnist", "--mnist", str(tmp_path), "--epochs", "2",
                "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"MNIST from {tmp_path} (100 training, 20 test images)" in proc.stdout
    assert len(re.findall(r"epoch \d: training loss", proc.stdout)) == 2
    os.remove(tmp_path / "t10k-images-idx3-ubyte")
    proc = _run("demo", "--section", "mnist", "--mnist", str(tmp_path), "--no-progress")
    assert proc.returncode == 1 and "no t10k-images-idx3-ubyte[.gz]" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_load_mnist_checks_shapes(tmp_path):
    for stem, shape in [("train-images-idx3-ubyte", (4, 28, 28)), ("train-labels-idx1-ubyte", (4,)),
                        ("t10k-images-idx3-ubyte", (2, 27, 28)), ("t10k-labels-idx1-ubyte", (2,))]:
        gd.datasets.save_idx(tmp_path / stem, np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="MNIST's shapes"):
        tour.load_mnist(str(tmp_path))


def test_tour_sections_report_honestly():
    import io

    out = io.StringIO()
    results = tour.run(["random", "square", "regression"], tour.Settings(out=out, samples=300))
    text = out.getvalue()
    # tour order, whatever order was asked for
    assert text.index("1. y = x^2") < text.index("3. linear regression") < text.index("9. random")
    assert "4.900, 4.802, 4.706" in text
    assert "built-in synthetic digit (not MNIST) images" in text
    r = results["random"]
    assert r["gd"][-1] < r["random"][-1] / 2          # the claim the section prints
    assert np.all(np.diff(r["random"]) <= 0)          # best-so-far never rises
    assert abs(results["regression"]["gd"].coef[0] - results["regression"]["lstsq"].coef[0]) < 1e-5
    with pytest.raises(ValueError, match="sections must be names from"):
        tour.run(["nope"])


def test_runs_at_their_cap_are_said_to_be_not_converged():
    capped = gd.minimize(lambda x: x * x, 5.0, lr=0.01, tol=1e-12, max_iter=10)
    assert tour._fmt_run(capped, 10) == "stopped at the cap of 10 steps, NOT converged"
    done = gd.minimize(lambda x: x * x, 5.0, lr=0.01, tol=0.1)
    assert tour._fmt_run(done, 10_000) == f"converged after {done.nit} steps"


def test_tour_pictures_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    import io

    results = tour.run(["square", "mnist", "cv"], tour.Settings(out=io.StringIO(),
                                                               samples=200, epochs=2))
    written = tour.draw(results, str(tmp_path / "pics"))
    assert sorted(os.path.basename(p) for p in written) == [
        "cross_validation.png", "descent_x2.png", "training_curves.png"]
    for p in written:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ---- bench ----------------------------------------------------------------------------

def test_bench_quick_prints_the_table():
    proc = _run("bench", "--quick", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "1 thread(s)" in lines[0]
    header = lines[1]
    assert "native us" in header and "reference us" in header and "speedup" in header
    rows = [line for line in lines[3:] if not line.startswith(tuple("0123456789"))]
    assert sum("train_step" in line for line in rows) == 3
    # every row has a speedup, whether or not a PyTorch column follows (torch installed)
    assert all(re.search(r"\s\d+\.\dx(\s|$)", line) for line in rows), rows
    assert "[1/9]" in proc.stderr and "[9/9]" in proc.stderr          # progress


def test_format_table_with_and_without_torch_and_noise():
    rows = [bench.Row("a", 10.0, 40.0, None, 0.01), bench.Row("b", 2.0, 2.0, None, 0.5)]
    text = bench.format_table(rows, threads=1)
    lines = text.splitlines()
    assert "PyTorch" not in lines[1]
    assert lines[3].endswith("4.0x") and lines[4].endswith("1.0x  noisy (spread 50%)")
    assert "1 row(s) stayed noisy" in lines[-1]
    rows[0] = bench.Row("a", 10.0, 40.0, 12.5, 0.01)
    lines = bench.format_table(rows, threads=1).splitlines()
    assert "PyTorch us" in lines[1]
    assert lines[3].split()[-2:] == ["4.0x", "12.5"] and lines[4].split()[4] == "-"


def test_measure_returns_a_median_and_a_spread():
    median, spread = bench.measure(lambda: sum(range(100)), quick=True)
    assert median > 0 and spread >= 0


# ---- package basics ---------------------------------------------------------------------

@pytest.mark.parametrize("module", ["", "datasets", "testfunctions", "schedules", "trajectories",
                                    "plot", "bench", "tour", "cli", "minimize", "linear_model",
                                    "distributed", "model_selection", "sklearn", "gradients",
                                    "reference.activations", "reference.dense",
                                    "reference.losses", "reference.network",
                                    "reference.optimizers"])
def test_public_modules_show_only_their_public_names(module):
    import importlib

    name = f"gdcore.{module}" if module else "gdcore"
    # gdcore.sklearn needs scikit-learn (an extra) of a recent enough version
    mod = pytest.importorskip(name) if module == "sklearn" else importlib.import_module(name)
    assert sorted(dir(mod)) == sorted(mod.__all__)
    assert all(hasattr(mod, name) for name in mod.__all__)
    assert not {"np", "os", "atomic_write", "math"} & set(dir(mod))


def test_the_reference_package_shows_its_twins_and_their_modules_only():
    from gdcore import reference

    modules = {"activations", "dense", "losses", "network", "optimizers"}
    assert set(dir(reference)) == set(reference.__all__) | modules
    assert all(hasattr(reference, name) for name in dir(reference))


def test_importing_the_uncompiled_source_tree_says_what_to_do(tmp_path):
    shutil.copytree(os.path.join(ROOT, "gdcore"), tmp_path / "gdcore",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = {k: val for k, val in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import gdcore"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()
    assert any(line.startswith("ImportError: gdcore's compiled modules are missing")
               for line in last)
    assert "build_ext --inplace" in proc.stderr and "another directory" in proc.stderr
    assert "circular import" not in proc.stderr


def test_package_ships_type_information():
    assert os.path.exists(os.path.join(os.path.dirname(gd.__file__), "py.typed"))
