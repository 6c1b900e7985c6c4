import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Depthwise 2-D convolution (groups = C), channels-last:
    x [N, H, W, C], w [C, R, R, 1] -> y [N, OH, OW, C]."""

    def __init__(self, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def __call__(self, x: mx.array, w: mx.array) -> mx.array:
        return mx.conv2d(
            x, w, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=x.shape[-1]
        )
