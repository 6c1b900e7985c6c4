import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Matrix add: C = A + B."""

    def __call__(self, A: mx.array, B: mx.array) -> mx.array:
        return A + B
