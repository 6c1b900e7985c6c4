import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """y[1] = sum over the batch of (global average over D, H, W of the max
    over filters of conv3d(x, w) / div_val, + bias_val). Channels last:
    x [N, D, H, W, C], w [F, R, R, R, C]; stride 1, no padding."""

    def __init__(self, div_val: float = 2.0, bias_val: float = 0.5):
        super().__init__()
        self.div_val = div_val
        self.bias_val = bias_val

    def __call__(self, x: mx.array, w: mx.array) -> mx.array:
        y = mx.conv3d(x, w) / self.div_val
        y = mx.max(y, axis=-1)
        y = mx.mean(y, axis=(1, 2, 3)) + self.bias_val
        return mx.sum(y, keepdims=True)
