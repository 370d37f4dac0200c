"""The constants shared by the native kernels and Python: one source for both.

``setup.py`` reads this file (it imports nothing) and writes ``gdcore/_constants.pxi``,
which ``_native.pxi`` includes first: every code, slot index, stream id and threshold
below becomes a C enum (or a 64-bit macro) of the same name, so C and Python can not
disagree.  The compiled module also exports the values it was built with
(``COMPILED_CONSTANTS``), and a test checks them against this file, so a stale build
is caught.

Codes are positions in the name tuples.  Adding an activation, loss or optimizer starts
here: append its name (and, for an optimizer, its scalar and state layouts).
"""

# ---- codes ------------------------------------------------------------------------
# activations of gdcore.kernels.activation / dense layers: ACT_<NAME> = index
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "softmax",
               "leaky_relu", "elu", "gelu", "softplus", "silu")
# losses of gdcore.kernels.loss_delta: LOSS_<NAME> = index
LOSSES = ("squared_error", "mse", "cross_entropy", "binary_cross_entropy",
          "huber", "mae", "poisson")
# native update loops (AdamW is Adam with the decoupled-decay flag): OPT_<NAME> = index
OPTIMIZERS = ("sgd", "adagrad", "adadelta", "rmsprop", "adam", "nadam", "adamax", "radam",
              "rprop")

# ---- the optimizer step's layout ----------------------------------------------------
# float64 scalars of one step, in slot order: S_<OPTIMIZER>_<NAME> = slot.  Python
# computes them (gdcore.optim.*._native_scalars) and the native loops read them.
N_SCALARS = 8
OPTIMIZER_SCALARS = {
    "sgd": ("lr", "momentum", "dampening", "weight_decay", "first_step"),
    "adagrad": ("clr", "eps", "weight_decay"),
    "adadelta": ("lr", "rho", "eps", "weight_decay"),
    "rmsprop": ("lr", "alpha", "eps", "weight_decay", "momentum"),
    "adam": ("beta1", "beta2", "eps", "weight_decay", "decay_factor", "step_size",
             "bias_correction2_sqrt"),
    # NAdam's coefficients of g / denom and m / denom (from torch's mu_product)
    "nadam": ("beta1", "beta2", "eps", "weight_decay", "decay_factor", "bias_correction2",
              "grad_coef", "exp_avg_coef"),
    "adamax": ("beta1", "beta2", "eps", "weight_decay", "clr"),
    # RAdam's rect is 0 on the steps without the variance rectification (rho_t <= 5)
    "radam": ("beta1", "beta2", "eps", "weight_decay", "lr", "bias_correction1",
              "bias_correction2_sqrt", "rect"),
    "rprop": ("etaminus", "etaplus", "step_size_min", "step_size_max"),
}
# state buffers, in slot order (the names of gdcore.optim's state and of the update
# kernels' arguments)
N_STATE = 3
OPTIMIZER_STATE = {
    "sgd": ("momentum_buffer",),
    "adagrad": ("state_sum",),
    "adadelta": ("square_avg", "acc_delta"),
    "rmsprop": ("square_avg", "momentum_buffer", "grad_avg"),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "nadam": ("exp_avg", "exp_avg_sq"),
    "adamax": ("exp_avg", "exp_inf"),
    "radam": ("exp_avg", "exp_avg_sq"),
    "rprop": ("prev", "step_size"),
}

# ---- random streams -------------------------------------------------------------------
# Dropout of layer l draws from stream l; the input noise from this one.
NOISE_STREAM = 1 << 32

# ---- thread thresholds (gdcore.kernels.THRESHOLDS) ------------------------------------
# An elementwise pass costs ~0.1-1 ns per element; below this many elements per thread a
# second thread costs more to wake than it saves.  Softmax and the backward passes use
# the same rule.
ELEMENTWISE_MIN_PER_THREAD = 32768
# An optimizer step costs ~0.2-0.9 ns per element: 65536 elements are ~15-60 us of work.
OPTIMIZER_MIN_PER_THREAD = 65536
# Multiply-adds per thread below which a GEMM stays on one thread (~25-40 us of
# single-core SGEMM): a 784-256 layer gets a second thread from batch 20 up.
GEMM_MIN_PER_THREAD = 4000000
# The same inside the training step, whose stall guard (team_for_step in _network.pxi)
# runs a step on one thread whenever the team does not beat one thread: a 784-256 layer
# splits from batch 6 up, 784-15 from batch 171.
STEP_GEMM_MIN_PER_THREAD = 1000000
# Inside a step that runs threaded, each layer's GEMMs split from this many
# multiply-adds per thread: once the team is up, a phase left to one thread makes the
# worker wait past its short spin (GOMP_SPINCOUNT, see _config.py) and sleep, and
# waking it cost more than splitting a smaller GEMM (784-256-128-10 at batch 32: two
# threads 0.9-1.1x one thread with the layers split from 1e6, 1.2-1.5x from 125,000).
STEP_LAYER_MIN_PER_THREAD = 125000
THRESHOLDS = {
    "elementwise_min_per_thread": ELEMENTWISE_MIN_PER_THREAD,  # elements
    "optimizer_min_per_thread": OPTIMIZER_MIN_PER_THREAD,      # elements of a step
    "gemm_min_per_thread": GEMM_MIN_PER_THREAD,                # multiply-adds of a layer
    "step_gemm_min_per_thread": STEP_GEMM_MIN_PER_THREAD,      # the same in a train step
    "step_layer_min_per_thread": STEP_LAYER_MIN_PER_THREAD,    # a layer of a threaded step
}

# ---- limits ---------------------------------------------------------------------------
MAX_LAYERS = 64

# ---- gradient clipping and parameter groups --------------------------------------------
# clipping modes of the optimizer pass: CLIP_<MODE> = index
CLIP_MODES = ("none", "norm", "value")
# The gradient norm sums fixed blocks of the flat buffer in double and adds the block
# sums in block order, so it has the same bits for any thread count: at most
# NORM_MAX_BLOCKS blocks of at least NORM_BLOCK elements each.
NORM_BLOCK = 4096
NORM_MAX_BLOCKS = 256
# Each block is summed as NORM_LANES partial sums (element i of the block into lane
# i mod NORM_LANES), added in lane order at the end: vector registers' worth of
# independent sums, so the reduction runs at the speed of memory.
NORM_LANES = 16
# The optimizer pass clips the gradient a chunk of this many elements at a time, just
# before the update loop reads the chunk (still in L1: 8 or 16 KiB).
CLIP_CHUNK = 2048


def c_names():
    """Every constant as (C name, value): what ``setup.py`` writes to the .pxi."""
    for opt in OPTIMIZERS:
        if len(OPTIMIZER_SCALARS[opt]) > N_SCALARS or len(OPTIMIZER_STATE[opt]) > N_STATE:
            raise ValueError(f"the layout of {opt!r} exceeds N_SCALARS or N_STATE")
    items = [("ACT_" + name.upper(), i) for i, name in enumerate(ACTIVATIONS)]
    items += [("LOSS_" + name.upper(), i) for i, name in enumerate(LOSSES)]
    items += [("OPT_" + name.upper(), i) for i, name in enumerate(OPTIMIZERS)]
    for opt in OPTIMIZERS:
        items += [(f"S_{opt.upper()}_{name.upper()}", i)
                  for i, name in enumerate(OPTIMIZER_SCALARS[opt])]
    items += [("N_OPTIMIZERS", len(OPTIMIZERS)), ("N_SCALARS", N_SCALARS), ("N_STATE", N_STATE),
              ("NOISE_STREAM", NOISE_STREAM),
              ("ELEMENTWISE_MIN_PER_THREAD", ELEMENTWISE_MIN_PER_THREAD),
              ("OPTIMIZER_MIN_PER_THREAD", OPTIMIZER_MIN_PER_THREAD),
              ("GEMM_MIN_PER_THREAD", GEMM_MIN_PER_THREAD),
              ("STEP_GEMM_MIN_PER_THREAD", STEP_GEMM_MIN_PER_THREAD),
              ("STEP_LAYER_MIN_PER_THREAD", STEP_LAYER_MIN_PER_THREAD),
              ("MAX_LAYERS", MAX_LAYERS)]
    items += [("CLIP_" + name.upper(), i) for i, name in enumerate(CLIP_MODES)]
    items += [("NORM_BLOCK", NORM_BLOCK), ("NORM_MAX_BLOCKS", NORM_MAX_BLOCKS),
              ("CLIP_CHUNK", CLIP_CHUNK), ("NORM_LANES", NORM_LANES)]
    return items


def pxi_source():
    """The text of ``gdcore/_constants.pxi``: small values as one C enum, values beyond
    32 bits as unsigned 64-bit macros; and the dict of compiled values."""
    small = [(k, val) for k, val in c_names() if val < 2**31]
    large = [(k, val) for k, val in c_names() if val >= 2**31]
    lines = ["# Generated by setup.py from gdcore/_constants.py: edit that file instead.",
             "cdef enum:"]
    lines += [f"    {k} = {val}" for k, val in small]
    lines += ["", "cdef extern from *:", '    """']
    lines += [f"    #define GD_{k} {val}ULL" for k, val in large]
    lines += ['    """']
    lines += [f'    unsigned long long {k} "GD_{k}"' for k, _ in large]
    lines += ["", "COMPILED_CONSTANTS = {"]
    lines += [f'    "{k}": {k},' for k, _ in small + large]
    lines += ["}", ""]
    return "\n".join(lines)
