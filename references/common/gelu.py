import math

import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """GELU, the exact (erf) form: y = x * (1 + erf(x / sqrt(2))) / 2, element-wise."""

    def __call__(self, x: mx.array) -> mx.array:
        return x * (1 + mx.erf(x / math.sqrt(2))) / 2
