"""Logistic regression, the model spec {"kind": "logistic", "inputDim": d, "hidden": []}: parameters
dense_0/kernel [d, 1] and dense_0/bias [1], logit = x . kernel + bias. Local training (mini-batch SGD or
Adam, optional FedProx term) and exact evaluation histograms. Uses numpy when it is installed, else
plain Python (slower, same results up to rounding).
"""
import math

try:
    import numpy as np
except ImportError:  # pragma: no cover - exercised on machines without numpy
    np = None


def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _bce(logit, y):
    # log(1 + exp(-|z|)) + max(z, 0) - y z: stable binary cross-entropy on the logit
    return math.log1p(math.exp(-abs(logit))) + max(logit, 0.0) - y * logit


def train(weights, bias, features, labels, config, rng, adam=False):
    """Runs config.local_steps steps from (weights, bias); returns (weights, bias, mean batch loss) as floats.

    config is the task's TaskConfig message (local_steps, batch_size, learning_rate, proximal_mu); adam:
    whether config.optimizer is OPTIMIZER_ADAM."""
    steps, batch = int(config.local_steps), int(config.batch_size)
    lr, mu = float(config.learning_rate), float(config.proximal_mu)
    start = list(weights) + [bias]
    theta = list(start)
    d = len(weights)
    m, v = [0.0] * (d + 1), [0.0] * (d + 1)
    order, cursor = list(range(len(features))), len(features)
    losses = []
    if np is not None:
        X, Y = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    for step in range(1, steps + 1):
        rows = []
        while len(rows) < batch:  # epochs of a shuffled order (data order only, not privacy)
            if cursor >= len(order):
                rng.shuffle(order)
                cursor = 0
            take = order[cursor:cursor + batch - len(rows)]
            cursor += len(take)
            rows.extend(take)
        if np is not None:
            w = np.asarray(theta[:d])
            z = X[rows] @ w + theta[d]
            p = 1.0 / (1.0 + np.exp(-z))
            err = p - Y[rows]
            grad = list((X[rows].T @ err) / len(rows)) + [float(err.mean())]
            losses.append(float(np.mean(np.logaddexp(0.0, z) - Y[rows] * z)))
        else:
            grad = [0.0] * (d + 1)
            loss = 0.0
            for r in rows:
                x = features[r]
                z = sum(a * b for a, b in zip(x, theta)) + theta[d]
                err = _sigmoid(z) - labels[r]
                for j in range(d):
                    grad[j] += err * x[j]
                grad[d] += err
                loss += _bce(z, labels[r])
            grad = [g / len(rows) for g in grad]
            losses.append(loss / len(rows))
        for j in range(d + 1):
            g = grad[j] + mu * (theta[j] - start[j])
            if adam:
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                mh, vh = m[j] / (1 - 0.9 ** step), v[j] / (1 - 0.999 ** step)
                theta[j] -= lr * mh / (math.sqrt(vh) + 1e-7)
            else:
                theta[j] -= lr * g
    return theta[:d], theta[d], (sum(losses) / len(losses) if losses else 0.0)


def logits(weights, bias, features):
    if np is not None:
        return list(np.asarray(features, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) + bias)
    return [sum(a * b for a, b in zip(x, weights)) + bias for x in features]


def bin_of_logit(logit, bins, logit_range):
    """privacy/auc-histogram.ts binOfLogit: clamp to [-range, range], equal-width bins, the top edge in the last bin."""
    clamped = -logit_range if logit < -logit_range else logit_range if logit > logit_range else logit
    b = int(math.floor((clamped + logit_range) / (2 * logit_range) * bins))
    return bins - 1 if b >= bins else b


def evaluate(weights, bias, features, labels, bins, logit_range):
    """(positive histogram, negative histogram, mean loss, accuracy at logit 0) on the given rows."""
    positive, negative = [0] * bins, [0] * bins
    loss, correct = 0.0, 0
    for z, y in zip(logits(weights, bias, features), labels):
        z = float(z)
        (positive if y == 1 else negative)[bin_of_logit(z, bins, logit_range)] += 1
        loss += _bce(z, y)
        correct += int((z > 0) == (y == 1))
    n = max(len(labels), 1)
    return positive, negative, loss / n, correct / n
