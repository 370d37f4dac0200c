"""
A drop-in for scikit-learn's MLPClassifier
==========================================

:class:`gdcore.sklearn.MLPClassifier` takes scikit-learn's parameters and follows its
update rules, so switching is a change of import.  From the same ``random_state`` both
start from the same weights, draw the same mini-batches and end at the same weights to
rounding; gdcore runs each mini-batch as one native call.
"""
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.preprocessing import StandardScaler

from gdcore.sklearn import MLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

settings = dict(hidden_layer_sizes=(64,), solver="adam", batch_size=32, max_iter=30,
                random_state=0, tol=0.0, n_iter_no_change=1000)
results = {}
for name, cls in [("scikit-learn", SklearnMLP), ("gdcore", MLPClassifier)]:
    model = cls(**settings)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    results[name] = model
    print(f"{name:12s}  fit {seconds:6.3f} s   test accuracy {model.score(X_test, y_test):.4f}"
          f"   final loss {model.loss_:.6f}")

difference = max(float(np.max(np.abs(a - b)))
                 for a, b in zip(results["gdcore"].coefs_, results["scikit-learn"].coefs_))
print(f"largest weight difference after {settings['max_iter']} epochs: {difference:.2e}")
