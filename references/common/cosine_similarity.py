import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Cosine similarity of the rows of x[R, C] and y[R, C] -> [R]:
    dot(x, y) / (|x| * |y| + 1e-8)."""

    def __call__(self, x: mx.array, y: mx.array) -> mx.array:
        dot = mx.sum(x * y, axis=-1)
        nx = mx.sqrt(mx.sum(x * x, axis=-1))
        ny = mx.sqrt(mx.sum(y * y, axis=-1))
        return dot / (nx * ny + 1e-8)
