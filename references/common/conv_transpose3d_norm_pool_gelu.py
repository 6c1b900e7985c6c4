import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """y = gelu(avgpool2(layer_norm(conv_transpose3d(x, w) + sum_term))),
    channels last: x [N, D, H, W, C], w [F, R, R, R, C], sum_term [F]. The
    LayerNorm is over the filters, without weight or bias; the average pool
    is 2x2x2 with stride 2 (an odd last slice dropped); GELU exact (erf)."""

    def __init__(self, stride: int = 1, padding: int = 0, dilation: int = 1, eps: float = 1e-5):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.eps = eps

    def __call__(self, x: mx.array, w: mx.array, sum_term: mx.array) -> mx.array:
        y = mx.conv_transpose3d(
            x, w, stride=self.stride, padding=self.padding, dilation=self.dilation
        )
        y = y + sum_term
        mean = mx.mean(y, axis=-1, keepdims=True)
        var = mx.var(y, axis=-1, keepdims=True)
        y = (y - mean) * mx.rsqrt(var + self.eps)
        n, d, h, w_, c = y.shape
        d2, h2, w2 = d // 2, h // 2, w_ // 2
        y = y[:, : 2 * d2, : 2 * h2, : 2 * w2, :]
        y = y.reshape(n, d2, 2, h2, 2, w2, 2, c).mean(axis=(2, 4, 6))
        return nn.gelu(y)
