import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Exclusive prefix sum along the last dim: y[i] = sum of x[:i], y[0] = 0."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.cumsum(x, axis=-1, inclusive=False)
