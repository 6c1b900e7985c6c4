import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """HardSigmoid: y = clip(x / 6 + 1/2, 0, 1)."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.clip(x / 6 + 0.5, 0, 1)
