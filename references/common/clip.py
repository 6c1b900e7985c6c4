import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Clip: y = clip(x, lo, hi), lo -1, hi 1."""

    def __init__(self, lo: float = -1.0, hi: float = 1.0):
        super().__init__()
        self.lo = lo
        self.hi = hi

    def __call__(self, x: mx.array) -> mx.array:
        return mx.clip(x, self.lo, self.hi)
