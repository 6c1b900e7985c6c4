import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Matrix-vector product: y = A @ x, A [M, K], x [K] -> y [M]."""

    def __call__(self, A: mx.array, x: mx.array) -> mx.array:
        return A @ x
