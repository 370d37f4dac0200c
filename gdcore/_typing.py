"""Type aliases of gdcore's annotated signatures (PEP 484, numpy.typing).

Arrays the functions return are float32 or float64 (``FloatArray``); arguments that
take anything NumPy converts are ``numpy.typing.ArrayLike``.  The aliases are for
the annotations only: the functions check dtypes and shapes at run time.
"""
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "NDArray", "FloatArray", "IntArray", "Threads", "PathLike", "Spec",
           "Layout", "Clip", "GroupRow"]

#: a float32 or float64 array
FloatArray = NDArray[np.floating[Any]]
#: an integer array (class labels, row orders)
IntArray = NDArray[np.integer[Any]]
#: ``n_threads``: a positive count, or None for ``gdcore.get_num_threads()``
Threads = Optional[int]
#: a file system path
PathLike = Union[str, "os.PathLike[str]"]
#: an activation or loss spec: a name, or a pair (name, {parameter: value})
Spec = Union[str, Tuple[str, Dict[str, Any]]]
#: a network's parameter layout: (w0, w1, b0, b1) per layer (``MLP.param_layout``)
Layout = Tuple[Tuple[int, int, int, int], ...]
#: a checked gradient clipping setting: (``CLIP_`` code, value, norm_type), or None
Clip = Optional[Tuple[int, float, float]]
#: the settings of one parameter-group segment: (lr_factor, weight_decay or None)
GroupRow = Tuple[float, Optional[float]]
