import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Biased variance (ddof 0) of each row of x[R, C] -> [R]."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.var(x, axis=-1, ddof=0)
