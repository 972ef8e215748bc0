"""Focal loss on an imbalanced toy problem, in PyTorch and in JAX, with the same lossy loss.

Two noisy concentric circles: 200 positives on the inner one, 6000 negatives on
the outer one (30:1). A small MLP is trained full-batch with Adam, once with
binary cross entropy and once with the sigmoid focal loss (Lin et al., 2017),
in PyTorch (``lossy_torch.functional``) and in JAX (``lossy_jax``); both
frameworks call the one ``lossy_core`` formula. Precision and recall of the
positive class on a held-out set are reported for each run.

    python examples/imbalanced_circles.py            # full run (well under 30 s on a laptop CPU)
    python examples/imbalanced_circles.py --steps 50 # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# focal settings: gamma 2 down-weights the many easy negatives; alpha 0.75 gives the rare
# positives the larger share (alpha is the positives' weight, as in torchvision).
FOCAL = {"alpha": 0.75, "gamma": 2.0}


def circles(n_pos=200, n_neg=6000, noise=0.35, seed=0):
    """Points on circles of radius 1 (label 1) and 2 (label 0), with Gaussian noise; float32."""
    rng = np.random.default_rng(seed)

    def ring(n, radius):
        angle = rng.uniform(0, 2 * np.pi, n)
        points = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return points + rng.normal(scale=noise, size=points.shape)

    x = np.concatenate([ring(n_pos, 1.0), ring(n_neg, 2.0)]).astype(np.float32)
    y = np.concatenate([np.ones(n_pos), np.zeros(n_neg)]).astype(np.float32)
    order = rng.permutation(len(y))
    return x[order], y[order]


def precision_recall(logits, labels):
    predicted = np.asarray(logits) > 0
    true_positive = np.sum(predicted & (labels == 1))
    precision = true_positive / max(int(np.sum(predicted)), 1)
    recall = true_positive / max(int(np.sum(labels == 1)), 1)
    return float(precision), float(recall)


def _init(seed, hidden=32):
    rng = np.random.default_rng(seed)
    shapes = [(2, hidden), (hidden,), (hidden, hidden), (hidden,), (hidden, 1), (1,)]
    return [(rng.normal(size=s) / np.sqrt(s[0]) if len(s) == 2 else np.zeros(s)).astype(np.float32) for s in shapes]


def train_torch(loss_name, x, y, x_test, steps, seed=0):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 6200 x 32 MLP: threads cost more than they give
    try:
        return _train_torch(torch, loss_name, x, y, x_test, steps, seed)
    finally:
        torch.set_num_threads(threads)


def _train_torch(torch, loss_name, x, y, x_test, steps, seed):
    import lossy_torch.functional as LF

    torch.manual_seed(seed)
    params = [torch.tensor(p, requires_grad=True) for p in _init(seed)]
    optimizer = torch.optim.Adam(params, lr=0.01)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)

    def model(data):
        w1, b1, w2, b2, w3, b3 = params
        hidden = torch.tanh(torch.tanh(data @ w1 + b1) @ w2 + b2)
        return (hidden @ w3 + b3)[:, 0]

    for _ in range(steps):
        optimizer.zero_grad()
        logits = model(inputs)
        if loss_name == "bce":
            loss = LF.binary_cross_entropy_with_logits(logits, targets)
        else:
            loss = LF.sigmoid_focal_loss(logits, targets, reduction="sum", normalizer=targets.sum(), **FOCAL)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return model(torch.from_numpy(x_test)).numpy()


def train_jax(loss_name, x, y, x_test, steps, seed=0):
    import jax
    import jax.numpy as jnp
    import optax

    import lossy_jax

    params = [jnp.asarray(p) for p in _init(seed)]
    optimizer = optax.adam(0.01)
    state = optimizer.init(params)

    def model(params, data):
        w1, b1, w2, b2, w3, b3 = params
        hidden = jnp.tanh(jnp.tanh(data @ w1 + b1) @ w2 + b2)
        return (hidden @ w3 + b3)[:, 0]

    def objective(params, data, labels):
        logits = model(params, data)
        if loss_name == "bce":
            return lossy_jax.binary_cross_entropy_with_logits(logits, labels)
        # normalizer: RetinaNet divides the summed loss by the number of positives
        return lossy_jax.sigmoid_focal_loss(logits, labels, reduction="sum", normalizer=jnp.sum(labels), **FOCAL)

    @jax.jit
    def step(params, state, data, labels):
        grads = jax.grad(objective)(params, data, labels)
        updates, state = optimizer.update(grads, state)
        return optax.apply_updates(params, updates), state

    data, labels = jnp.asarray(x), jnp.asarray(y)
    for _ in range(steps):
        params, state = step(params, state, data, labels)
    return np.asarray(model(params, jnp.asarray(x_test)))


def main(steps=300, n_pos=200, n_neg=6000, frameworks=("torch", "jax"), verbose=True):
    """Train every (framework, loss) pair; returns ``{(framework, loss): (precision, recall)}``."""
    x, y = circles(n_pos, n_neg, seed=0)
    x_test, y_test = circles(n_pos, n_neg, seed=1)
    trainers = {"torch": train_torch, "jax": train_jax}
    results = {}
    for framework in frameworks:
        for loss_name in ("bce", "focal"):
            start = time.perf_counter()
            logits = trainers[framework](loss_name, x, y, x_test, steps)
            results[framework, loss_name] = precision_recall(logits, y_test)
            if verbose:
                precision, recall = results[framework, loss_name]
                print(f"{framework:5s} {loss_name:5s}  precision {precision:.3f}  recall {recall:.3f}  "
                      f"({time.perf_counter() - start:.1f} s)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    main(steps=parser.parse_args().steps)
