import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Swish (SiLU) on bfloat16 arrays: y = x * sigmoid(x)."""

    def __call__(self, x: mx.array) -> mx.array:
        return x * mx.sigmoid(x)
