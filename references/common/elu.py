import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """ELU: y = x if x > 0 else alpha * (exp(x) - 1), alpha 1.0 (MLX nn.elu)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def __call__(self, x: mx.array) -> mx.array:
        return mx.where(x > 0, x, self.alpha * (mx.exp(x) - 1))
