"""The cost of the finiteness check a native ``train_step`` runs on its batch.

``time_train_step`` is one whole step of the 784-256-128-10 ReLU network on a batch of
32 (check included); ``time_finite_check`` is the check alone on the same X (the
fused C pass, one read of 32 x 784 floats).  Their ratio is the check's share of the
step (the issue's budget: <= 2%).
"""
import numpy as np

from .common import matrix


class TimeFiniteCheck:
    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        import gdcore as gd
        from gdcore import kernels
        self.net = gd.MLP([784, 256, 128, 10], activation="relu", dtype=dtype, seed=0)
        self.opt = gd.optim.Adam(lr=1e-3)
        self.X = matrix(32, 784, dtype, seed=1)
        self.T = np.random.default_rng(2).integers(0, 10, 32)
        self.check = kernels._native.batch_is_finite
        self.net.train_step(self.X, self.T, self.opt)

    def time_train_step(self, dtype):
        self.net.train_step(self.X, self.T, self.opt)

    def time_finite_check(self, dtype):
        self.check(self.X)
