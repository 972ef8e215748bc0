"""Logistic regression in plain NumPy, trained with lossy_core's analytic gradients.

NumPy has no autodiff: ``lossy_core.value_and_grad`` gives the loss and its gradient
with respect to the logits (torch's, analytically); the chain rule to the weights is
one matrix product. Run it: ``python examples/numpy_logistic_regression.py``.
"""

from __future__ import annotations

import numpy as np

import lossy_core


def make_data(n=400, seed=0):
    """Two Gaussian blobs in 2-D, labels 0 and 1 (float, as binary_cross_entropy_with_logits takes)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.float64)
    centres = np.where(labels[:, None] == 1, [1.5, 1.0], [-1.0, -1.5])
    return centres + rng.standard_normal((n, 2)), labels


def train(features, labels, steps=200, learning_rate=0.5):
    """Full-batch gradient descent; returns the weights, the bias and the loss at every step."""
    loss_and_grad = lossy_core.value_and_grad(lossy_core.binary_cross_entropy_with_logits)
    weights, bias, losses = np.zeros(features.shape[1]), 0.0, []
    for _ in range(steps):
        logits = features @ weights + bias
        loss, grads = loss_and_grad(logits, labels)  # reduction='mean': a scalar, upstream 1
        d_logits = grads["input"]  # d loss / d logits, shape (n,)
        weights -= learning_rate * (features.T @ d_logits)
        bias -= learning_rate * float(np.sum(d_logits))
        losses.append(float(loss))
    return weights, bias, losses


def accuracy(features, labels, weights, bias):
    return float(np.mean(((features @ weights + bias) > 0) == (labels == 1)))


if __name__ == "__main__":
    X, y = make_data()
    w, b, history = train(X, y)
    print(f"loss {history[0]:.4f} -> {history[-1]:.4f}, accuracy {accuracy(X, y, w, b):.1%}")
