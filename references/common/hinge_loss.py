import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Element-wise hinge loss (unreduced): max(1 - pred * target, 0)."""

    def __call__(self, pred: mx.array, target: mx.array) -> mx.array:
        return mx.maximum(1.0 - pred * target, 0.0)
