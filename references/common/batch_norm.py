import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """BatchNorm of x[N, C] with batch statistics (training mode): each
    column normalized by its mean and biased variance over the N rows, then
    scaled by weight[C] and shifted by bias[C]."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def __call__(self, x: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
        mean = mx.mean(x, axis=0)
        var = mx.var(x, axis=0)
        return (x - mean) * mx.rsqrt(var + self.eps) * weight + bias
