import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Inclusive prefix product along the last dim of x[R, C]."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.cumprod(x, axis=-1)
