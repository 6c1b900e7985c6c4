import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Natural log of |x| + 1e-30: y = log(|x| + 1e-30)."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.log(mx.abs(x) + 1e-30)
