import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Element-wise Huber loss (unreduced) of r = pred - target:
    r^2 / 2 where |r| <= delta, else delta * (|r| - delta / 2)."""

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = delta

    def __call__(self, pred: mx.array, target: mx.array) -> mx.array:
        r = pred - target
        a = mx.abs(r)
        return mx.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))
