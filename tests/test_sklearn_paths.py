"""The estimators' fast paths give what the scikit-learn code they replace gives:
integer labels instead of LabelBinarizer's one-hot rows, Adam's per-step scalars built
a column at a time, and the epoch shuffle without sklearn.utils.shuffle's checks."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.preprocessing import LabelBinarizer  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils import shuffle as sk_shuffle  # noqa: E402

from gdcore import optim  # noqa: E402
from gdcore.sklearn import MLPClassifier, ScikitAdam, _shuffled  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("y", [
    np.array(["emu", "cat", "dog", "cat", "emu", "emu"]),           # multiclass strings
    np.array([42, 3, 10, 3, 42, 7, 7]),                             # non-contiguous ints
    np.array([True, False, False, True, True]),                     # binary bools
    np.array(["yes", "no", "no", "yes"]),                           # binary strings
    np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0], [1, 1, 0]]),         # multilabel
])
def test_encoded_labels_carry_label_binarizers_information(y):
    clf = MLPClassifier()
    clf._label_binarizer = LabelBinarizer().fit(y)
    clf.classes_ = clf._label_binarizer.classes_
    onehot = clf._label_binarizer.transform(y).astype(bool)
    encoded = clf._encode_labels(y)
    if clf._label_binarizer.y_type_ == "multiclass":
        # int64 codes into classes_, one per sample: the one-hot rows' argmax
        assert encoded.dtype == np.int64 and encoded.shape == (len(y),)
        eye = np.eye(len(clf.classes_), dtype=bool)
        np.testing.assert_array_equal(eye[encoded], onehot)
        np.testing.assert_array_equal(clf._decode_labels(encoded), y)
    else:
        # binary: LabelBinarizer's one column; multilabel: its indicator matrix
        assert encoded.dtype == onehot.dtype and encoded.shape == onehot.shape
        np.testing.assert_array_equal(encoded, onehot)
        np.testing.assert_array_equal(clf._decode_labels(encoded),
                                      clf._label_binarizer.inverse_transform(onehot))


def test_multiclass_targets_reach_the_network_as_labels():
    X = np.random.default_rng(0).standard_normal((60, 4))
    y = np.array(["a", "b", "c"])[np.arange(60) % 3]
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    X_checked, T = clf._validate_input(X, y, incremental=False, reset=True)
    assert T.dtype == np.int64 and T.shape == (60,)
    np.testing.assert_array_equal(clf.classes_[T], y)
    clf.fit(X, y)
    assert clf.n_outputs_ == 3 and clf.coefs_[-1].shape == (5, 3)


def test_partial_fit_with_absent_classes_matches_scikit_learn():
    """classes= names labels a batch may lack; warm_start keeps the classes."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 6))
    y = np.array([5, 9, 11, 20])[rng.integers(0, 4, 90)]
    params = dict(hidden_layer_sizes=(7,), solver="sgd", random_state=2, batch_size=16)
    ours, theirs = MLPClassifier(**params), SkMLPClassifier(**params)
    first = np.isin(y, [5, 9])
    for est in (ours, theirs):
        est.partial_fit(X[first], y[first], classes=[5, 9, 11, 20])
        est.partial_fit(X[~first], y[~first])
        est.partial_fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="classes not in"):
        ours.partial_fit(X[:3], np.array([5, 9, 99]))
    warm = MLPClassifier(**params, warm_start=True, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(X[first], y[first])


@pytest.mark.parametrize("step_count", [0, 1, 999])
@pytest.mark.parametrize("n_steps", [0, 1, 2, 1875])
def test_scikit_adam_scalars_equal_the_per_step_rows(step_count, n_steps):
    opt = ScikitAdam(lr=3e-3, betas=(0.8, 0.99), eps=1e-7)
    opt.step_count = step_count
    fast = opt.native_scalars(n_steps)
    # the generic path: one _native_scalars row per step
    rows = optim.Optimizer.native_scalars(opt, n_steps)
    assert fast.dtype == np.float64 and fast.shape == rows.shape
    np.testing.assert_array_equal(fast, rows)            # bitwise
    assert opt.step_count == step_count                  # nothing advanced


def test_scikit_adam_scalars_with_a_schedule_take_the_generic_path():
    opt = ScikitAdam(lr=1e-3)
    rates = [1e-3, 5e-4, 2e-4]
    got = opt.native_scalars(3, lambda step: rates[step])
    again = ScikitAdam(lr=1e-3)
    np.testing.assert_array_equal(
        got, optim.Optimizer.native_scalars(again, 3, lambda step: rates[step]))
    assert opt.lr == 2e-4


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_shuffled_draws_what_sklearn_shuffle_draws(n):
    index = np.arange(n, dtype=np.int64)[::-1].copy()
    ours, theirs = check_random_state(5), check_random_state(5)
    for _ in range(3):            # successive epochs: the generators stay in step
        got, want = _shuffled(index, ours), sk_shuffle(index, random_state=theirs)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.int64
        index = got
    assert ours.randint(1 << 30) == theirs.randint(1 << 30)
