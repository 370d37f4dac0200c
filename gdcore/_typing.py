"""Type aliases of gdcore's annotated signatures (PEP 484, numpy.typing).

Arrays the functions return are float32 or float64 (``FloatArray``); arguments that
take anything NumPy converts are ``numpy.typing.ArrayLike``.  The aliases are for
the annotations only: the functions check dtypes and shapes at run time.
"""
import os
from typing import Any, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "NDArray", "FloatArray", "IntArray", "Threads", "PathLike"]

#: a float32 or float64 array
FloatArray = NDArray[np.floating[Any]]
#: an integer array (class labels, row orders)
IntArray = NDArray[np.integer[Any]]
#: ``n_threads``: a positive count, or None for ``gdcore.get_num_threads()``
Threads = Optional[int]
#: a file system path
PathLike = Union[str, "os.PathLike[str]"]
