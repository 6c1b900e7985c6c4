import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Index of the largest element of each row of x[R, C] -> uint32 [R].
    Ties go to the lowest index; NaN counts as larger than everything."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.argmax(x, axis=-1)
