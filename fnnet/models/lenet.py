"""LeNet-5 (LeCun et al., 1998), the classic and the course notes' variant.

Imports: fnnet.nn (and the zoo's own _layers).
"""
from __future__ import annotations

from fnnet import nn
from fnnet.models._layers import images

__all__ = ["lenet5"]


def lenet5(num_classes: int = 10, *, variant: str = "classic", impl: str = "auto") -> nn.Module:
    """LeNet-5, channels last; returns logits (apply a softmax or a softmax loss).

    ``variant="classic"`` (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based
    learning applied to document recognition") on ``32x32x1``::

        C1 conv 6@5x5 -> tanh -> S2 avg pool 2 -> C3 conv 16@5x5 -> tanh -> S4 avg pool 2
        -> flatten -> C5 dense 120 -> tanh -> F6 dense 84 -> tanh -> dense num_classes

    Simplifications of the paper, as every modern reimplementation makes them: plain
    ``tanh`` (not ``1.7159 tanh(2x/3)``), plain average pooling (the paper's S2/S4 have
    a trainable coefficient and bias per map), C3 connected to all six S2 maps (not the
    paper's sparse table), and a dense output layer instead of the Euclidean RBF units.
    C5 is a dense layer on the flattened ``5x5x16`` map, which on a ``32x32`` input is
    exactly the paper's 5x5 conv with 120 filters. Parameters for 10 classes:
    156 + 2,416 + 48,120 + 10,164 + 850 = 61,706.

    ``variant="notes"`` (the LeNet-5-like example of the deep-learning course notes)
    on ``32x32x3``::

        conv 8@5x5 -> relu -> max pool 2 -> conv 16@5x5 -> relu -> max pool 2 -> flatten
        -> dense 120 -> relu -> dense 84 -> relu -> dense 10 (softmax in the loss)

    whose :func:`fnnet.nn.summary` rows with parameters give 608, 3,216, 48,120,
    10,164 and 850 (62,958 in all), row by row as in the notes' table.

    Both accept any input whose feature maps stay at least 5x5 after the two pools
    (e.g. MNIST's 28x28 padded to 32x32); the first dense layer's width follows the
    input.

    Args:
      num_classes: outputs of the last layer.
      variant: ``"classic"`` or ``"notes"``.
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
    """
    if variant == "classic":
        act, pool, filters = nn.tanh, nn.avg_pool(2, impl=impl), (6, 16)
    elif variant == "notes":
        act, pool, filters = nn.relu, nn.max_pool(2, impl=impl), (8, 16)
    else:
        raise ValueError(f"lenet5: expected variant 'classic' or 'notes', got {variant!r}")
    return images(nn.serial(
        nn.conv(filters[0], 5, impl=impl), act, pool,
        nn.conv(filters[1], 5, impl=impl), act, pool,
        nn.flatten,
        nn.dense(120), act,
        nn.dense(84), act,
        nn.dense(num_classes),
        name=f"lenet5_{variant}",
    ))
