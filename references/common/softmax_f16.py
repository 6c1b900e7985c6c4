import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Softmax along the last dimension of low-precision x, computed in float32
    inside (precise=True) and rounded once to x's dtype."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.softmax(x, axis=-1, precise=True)
