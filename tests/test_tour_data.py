"""gd.datasets.synthetic_digits: the tour's built-in stand-in for MNIST."""
import numpy as np
import pytest

import gdcore as gd


@pytest.mark.parametrize("n", [1, 7, 10, 253])
def test_shape_range_balance(n):
    X, y = gd.datasets.synthetic_digits(n, seed=0)
    assert X.shape == (n, 784) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() >= 0 and X.max() <= 1
    counts = np.bincount(y, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == n


def test_seeded_and_distinct():
    a = gd.datasets.synthetic_digits(50, seed=1)
    b = gd.datasets.synthetic_digits(50, seed=1)
    c = gd.datasets.synthetic_digits(50, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_classes_are_learnable_but_not_trivial():
    X, y = gd.datasets.synthetic_digits(2000, seed=0)
    net = gd.MLP([784, 15, 10], activation="sigmoid", seed=0)
    before = net.evaluate(X[1500:], y[1500:])["accuracy"]
    net.fit(X[:1500], y[:1500], epochs=3, optimizer=gd.optim.SGD(lr=0.5), progress=False)
    after = net.evaluate(X[1500:], y[1500:])["accuracy"]
    assert before < 0.3 and after > 0.6


def test_noise_free_images_of_a_class_are_shifts_of_one_figure():
    X, y = gd.datasets.synthetic_digits(40, seed=0, noise=0.0)
    for k in range(10):
        imgs = X[y == k].reshape(-1, 28, 28)
        # brightness scaling and shifts keep the peak pixel value ordering per class
        assert np.all(imgs.max(axis=(1, 2)) > 0.5)


@pytest.mark.parametrize("kwargs, error", [({"n_samples": 0}, ValueError),
                                           ({"n_samples": 2.5}, TypeError),
                                           ({"noise": -1.0}, ValueError)])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        gd.datasets.synthetic_digits(**kwargs)
