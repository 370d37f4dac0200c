"""Thread pools in one process: gdcore's OpenMP threads next to NumPy's OpenBLAS.

The oversubscription scenario (README, "Threads and instruction sets"): 200 rounds, each a native ``adam_update``
on 2e5 float32 elements (gdcore's OpenMP threads) followed by ``np.matmul`` of two
192x192 float32 matrices (NumPy's own OpenBLAS, left at its default thread count),
timed as one call.  ``time_adam_only`` and ``time_gemm_only`` run the same rounds with
one half each: ``time_interleaved`` should be close to their sum.  When idle workers
of one pool spin while the other pool works, the interleaved time is many times the
sum (measured at 1.7-2.0 s against ~30 ms).
"""
import numpy as np

from .common import backend, check_forked_child, matrix, require_split, vector

ROUNDS = 200
N_PARAMS = 200_000
GEMM_SIZE = 192


class TimeInterleavedPools:
    """The native Adam step on ``adam_threads`` threads alternating with NumPy GEMMs."""
    params = [[2, 1]]
    param_names = ["adam_threads"]
    timeout = 120

    @staticmethod
    def thread_work(adam_threads):
        return N_PARAMS, "optimizer_min_per_thread"

    def setup(self, adam_threads):
        require_split(adam_threads, *self.thread_work(adam_threads))
        kernels = backend("native")
        check_forked_child(adam_threads)
        self.adam_update = kernels.adam_update
        self.p = vector(N_PARAMS, "float32", seed=1)
        self.g = vector(N_PARAMS, "float32", seed=2) * np.float32(1e-2)
        state = kernels.optimizer_state("adam", self.p)
        self.m, self.v = state["exp_avg"], state["exp_avg_sq"]
        self.adam_update(self.p, self.g, self.m, self.v, step=1, n_threads=adam_threads)
        self.A = matrix(GEMM_SIZE, GEMM_SIZE, "float32", seed=3)
        self.B = matrix(GEMM_SIZE, GEMM_SIZE, "float32", seed=4)
        self.C = np.empty_like(self.A)
        np.matmul(self.A, self.B, out=self.C)

    def time_interleaved(self, adam_threads):
        p, g, m, v = self.p, self.g, self.m, self.v
        A, B, C = self.A, self.B, self.C
        adam, matmul = self.adam_update, np.matmul
        for _ in range(ROUNDS):
            adam(p, g, m, v, step=2, n_threads=adam_threads)
            matmul(A, B, out=C)

    def time_adam_only(self, adam_threads):
        p, g, m, v = self.p, self.g, self.m, self.v
        adam = self.adam_update
        for _ in range(ROUNDS):
            adam(p, g, m, v, step=2, n_threads=adam_threads)

    def time_gemm_only(self, adam_threads):
        A, B, C = self.A, self.B, self.C
        matmul = np.matmul
        for _ in range(ROUNDS):
            matmul(A, B, out=C)
