"""The one place that maps a backend name to its kernels.

``"native"`` is ``gdcore.kernels`` (the compiled kernels); ``"reference"`` is
``gdcore.reference`` (their NumPy twins, same names and signatures).  Networks and
optimizers take ``backend=`` and resolve it here.
"""
from . import _validation as v
from . import kernels as _kernels
from . import reference as _reference

BACKENDS = {"native": _kernels, "reference": _reference}


def check(backend):
    """``backend`` if it names a backend, else ValueError naming the choices."""
    return v.check_name(backend, "backend", tuple(BACKENDS))


def kernels_for(backend):
    """The module of kernels of the (checked) backend name."""
    return BACKENDS[backend]
