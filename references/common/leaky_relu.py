import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """LeakyReLU: y = x if x > 0 else negative_slope * x (slope 0.01)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def __call__(self, x: mx.array) -> mx.array:
        return mx.maximum(x, 0) + self.negative_slope * mx.minimum(x, 0)
