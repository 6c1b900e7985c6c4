import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """LogSigmoid: y = log(sigmoid(x)) = -softplus(-x) (MLX nn.log_sigmoid)."""

    def __call__(self, x: mx.array) -> mx.array:
        return nn.log_sigmoid(x)
