import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """y = relu(conv2d(x, w) + bias), channels last: x [N, H, W, C],
    w [F, R, R, C], bias [F] -> y [N, OH, OW, F]."""

    def __init__(self, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def __call__(self, x: mx.array, w: mx.array, bias: mx.array) -> mx.array:
        y = mx.conv2d(x, w, stride=self.stride, padding=self.padding, dilation=self.dilation)
        return mx.maximum(y + bias, 0.0)
