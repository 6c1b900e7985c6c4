import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """y = sigmoid(gelu(leaky_relu(relu(conv3d(x, w))))) + bias, channels
    last: x [N, D, H, W, C], w [F, R, R, R, C], bias [F] -> [N, OD, OH, OW, F].
    Leaky ReLU slope 0.01; GELU exact (erf)."""

    def __init__(self, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def __call__(self, x: mx.array, w: mx.array, bias: mx.array) -> mx.array:
        y = mx.conv3d(x, w, stride=self.stride, padding=self.padding, dilation=self.dilation)
        y = mx.maximum(y, 0.0)
        y = mx.where(y > 0, y, 0.01 * y)
        y = nn.gelu(y)
        return mx.sigmoid(y) + bias
