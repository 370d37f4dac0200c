"""The gdcore command (also python -m gdcore)::

  gdcore demo [--section NAME] [--mnist DIR] [--plot DIR]
                                 the learner's tour: from y = x^2 to a 784-15-10 network
  gdcore bench [--quick]         native kernels against the NumPy reference (and PyTorch,
                                 when installed), each row repeated until its spread is small
  gdcore info                    version, instruction-set build, OpenMP, threads, BLAS
  gdcore --version

Every command takes --help for its options.
"""
import argparse
import io
import os
import signal
import sys
from typing import List, Optional, Sequence

__all__ = ["main"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)

_DESCRIPTION = __doc__.split("\n\n", 1)[1]
# SIGPIPE's number (13 on every POSIX system; Windows has no SIGPIPE)
_SIGPIPE = int(getattr(signal, "SIGPIPE", 13))


def _print(*args):
    print(*args, flush=True)


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _at_least(low):
    def check(text):
        value = _positive(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return check


# ---- demo ------------------------------------------------------------------------

def _matplotlib_missing():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def demo(args):
    import gdcore as gd
    from gdcore import tour

    if args.plot and _matplotlib_missing():
        # checked before any work, so nothing runs and no folder is made
        args.parser.error("--plot needs matplotlib: pip install 'gdcore[plot]' "
                          "(or run the demo without --plot)")
    if args.mnist is not None and not os.path.isdir(args.mnist):
        args.parser.error(f"--mnist {args.mnist}: no such folder")
    _print(f"gdcore {gd.__version__}: gradient descent, from y = x^2 to a neural network "
           f"({gd.kernels.ISA} build, {gd.get_num_threads()} thread(s))")
    if args.section is None:
        _print(f"the whole tour, {len(tour.SECTIONS)} sections; --section NAME runs one "
               f"({', '.join(tour.SECTIONS)})\n")
    settings = tour.Settings(mnist_dir=args.mnist, epochs=args.epochs, samples=args.samples,
                             progress=args.progress)
    try:
        results = tour.run(None if args.section is None else [args.section], settings)
    except (OSError, ValueError) as exc:            # unreadable or malformed MNIST files
        _print(f"gdcore demo: error: {exc}")
        return 1
    if args.plot:
        _print("pictures")
        written = tour.draw(results, args.plot, say=_print)
        if not written:
            _print("   (this section has no pictures)")
    return 0


# ---- bench -------------------------------------------------------------------------

def bench(args):
    from gdcore import bench as benchmarks

    rows = benchmarks.run(quick=args.quick, threads=args.threads,
                          progress=sys.stderr if args.progress is not False else None)
    _print(benchmarks.format_table(rows, threads=args.threads))
    return 0


# ---- info --------------------------------------------------------------------------

def info(args):
    import gdcore as gd

    buffer = io.StringIO()
    gd.show_config(file=buffer)
    lines = buffer.getvalue().splitlines()
    from gdcore import _cpu

    lines.insert(1, f"  instruction set: {gd.kernels.ISA} build of the native kernels (this "
                    f"CPU runs: {', '.join(_cpu.supported_isas())}; GDCORE_ISA="
                    f"{os.environ.get('GDCORE_ISA', '') or 'unset'})")
    for line in lines:
        _print(line)
    return 0


# ---- the parser ---------------------------------------------------------------------

def _parser():
    import gdcore as gd
    from gdcore import tour

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="gdcore", description=_DESCRIPTION,
                                     formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"gdcore {gd.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sections = "\n".join(f"  {name:12s} {tour.TITLES[name]}" for name in tour.SECTIONS)
    p = sub.add_parser(
        "demo", help="the learner's tour, from y = x^2 to a 784-15-10 network",
        formatter_class=fmt,
        description="The learner's tour of gradient descent, one section per topic, each "
                    "printing its settings\nand whether its runs converged or hit their "
                    "cap. The whole tour takes well under 20 s.\n\nsections, in order:\n"
                    + sections)
    p.add_argument("--section", choices=tour.SECTIONS, metavar="NAME",
                   help="run only this section (names above)")
    p.add_argument("--mnist", metavar="DIR",
                   help="folder with MNIST's four IDX files (train-images-idx3-ubyte[.gz], "
                        "...); default: built-in synthetic digits of the same shape")
    p.add_argument("--plot", metavar="DIR", help="save the pictures (PNG) in DIR "
                                                 "(needs matplotlib)")
    p.add_argument("--epochs", type=_positive, default=3,
                   help="epochs of the 784-15-10 network (default 3)")
    p.add_argument("--samples", type=_at_least(100), default=10_000,
                   help="training images of the built-in digits (default 10000, >= 100)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.set_defaults(func=demo, progress=None, parser=p)
    p = sub.add_parser("bench", help="native against reference, side by side",
                       description="Median microseconds per call of the native kernels, the "
                                   "NumPy reference and PyTorch (when installed). Each row "
                                   "is repeated until the spread of its samples is small; "
                                   "rows that stay noisy are marked.")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, small sizes")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads for gdcore and the BLAS (default: gdcore's setting)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress lines on stderr")
    p.set_defaults(func=bench, progress=None, parser=p)
    p = sub.add_parser("info", help="version, instruction-set build, OpenMP, threads, BLAS",
                       description="Version, instruction-set build, OpenMP, threads and the "
                                   "BLAS libraries in this process.")
    p.set_defaults(func=info, parser=p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status.

    Argument errors exit with 2 after printing the usage of the command concerned.
    When the reader of the output goes away (``gdcore info | head -1``), the command
    stops quietly and returns 141 (128 + SIGPIPE), the status a shell reports for a
    program that SIGPIPE ended, as ``cat`` or ``seq`` do; stdout is pointed at the
    null device first, so that Python's final flush finds no closed pipe.  The
    SIGPIPE handler itself is left as Python sets it (ignored, so a write raises
    BrokenPipeError): ``main`` may run inside another program, whose other pipes a
    process-wide SIG_DFL would turn into sudden deaths.
    """
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + _SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
