import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """2-D transposed convolution, channels-last: x [N, H, W, C],
    w [F, R, R, C] -> y [N, (H-1)*stride - 2*padding + dilation*(R-1) + 1, ..., F]."""

    def __init__(self, stride: int = 2, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def __call__(self, x: mx.array, w: mx.array) -> mx.array:
        return mx.conv_transpose2d(
            x, w, stride=self.stride, padding=self.padding, dilation=self.dilation
        )
