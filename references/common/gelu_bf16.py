import math

import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """GELU, exact (erf) form, on bfloat16 arrays: y = x * (1 + erf(x / sqrt(2))) / 2."""

    def __call__(self, x: mx.array) -> mx.array:
        return x * (1 + mx.erf(x / math.sqrt(2))) / 2
