import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Mish: y = x * tanh(softplus(x)) (MLX nn.mish)."""

    def __call__(self, x: mx.array) -> mx.array:
        return nn.mish(x)
