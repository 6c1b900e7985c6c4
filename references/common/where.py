import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Select: y = a where condition > 0.5, else b."""

    def __call__(self, condition: mx.array, a: mx.array, b: mx.array) -> mx.array:
        return mx.where(condition > 0.5, a, b)
