import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Sigmoid: y = 1 / (1 + exp(-x))."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.sigmoid(x)
