import mlx.core as mx
import mlx.nn as nn


def max_pool2(y: mx.array) -> mx.array:
    """2x2x2 max pool, stride 2, over [N, D, H, W, C]; odd last slices dropped."""
    n, d, h, w, c = y.shape
    d2, h2, w2 = d // 2, h // 2, w // 2
    y = y[:, : 2 * d2, : 2 * h2, : 2 * w2, :]
    return y.reshape(n, d2, 2, h2, 2, w2, 2, c).max(axis=(2, 4, 6))


class Model(nn.Module):
    """y = maxpool2(maxpool2(softmax(conv3d(x, w), axis=-1))), channels last:
    x [N, D, H, W, C], w [F, R, R, R, C]; stride 1, no padding."""

    def __call__(self, x: mx.array, w: mx.array) -> mx.array:
        y = mx.softmax(mx.conv3d(x, w), axis=-1)
        return max_pool2(max_pool2(y))
