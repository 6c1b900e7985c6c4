import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    """Triplet margin loss per row (unreduced) of anchor, pos, neg [R, C]:
    max(|anchor - pos| - |anchor - neg| + margin, 0), Euclidean distances."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def __call__(self, anchor: mx.array, pos: mx.array, neg: mx.array) -> mx.array:
        d_pos = mx.sqrt(mx.sum((anchor - pos) ** 2, axis=-1))
        d_neg = mx.sqrt(mx.sum((anchor - neg) ** 2, axis=-1))
        return mx.maximum(d_pos - d_neg + self.margin, 0.0)
