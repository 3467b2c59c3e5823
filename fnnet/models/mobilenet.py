"""MobileNet v1 (Howard et al., 2017, "MobileNets: efficient convolutional neural
networks for mobile vision applications"), as defined in Keras.

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

from fnnet import nn
from fnnet.models._layers import conv_bn, images, relu6

__all__ = ["mobilenet_v1"]

# (pointwise filters, depthwise stride) of the 13 depthwise separable blocks (Table 1).
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

_BN = dict(eps=1e-3, momentum=0.01)  # Keras BatchNormalization(epsilon=1e-3, momentum=0.99)


def mobilenet_v1(num_classes: int = 1000, *, width_multiplier: float = 1.0,
                 dropout: float = 1e-3, impl: str = "auto") -> nn.Module:
    """MobileNet v1 (Howard et al., 2017, Table 1) as defined in Keras
    (``keras.applications.MobileNet``), channels last; returns logits.

    A 3x3 conv with 32 filters and stride 2, then 13 depthwise separable blocks::

        3x3 depthwise conv (stride 1 or 2) -> batch norm -> ReLU6
        -> 1x1 conv -> batch norm -> ReLU6

    with 64, 128, 128, 256, 256, 512, 5 x 512, 1024, 1024 filters; global average
    pooling, dropout and a dense classifier (Keras' 1x1 ``conv_preds``, the same
    weights). Convs have no bias; batch norm has eps 1e-3 and Keras' momentum 0.99
    (0.01 here, the weight of the new batch). Every filter count is multiplied by
    ``width_multiplier`` (alpha) and truncated to an int, as in Keras. Stride-2 convs
    pad with "SAME" (Keras pads (0, 1) then "VALID", the same on even inputs).

    Parameters at 224x224x3, 1000 classes and alpha 1: 4,231,976, the trainable
    parameters Keras reports for ``MobileNet()`` (its 4,253,864 "total" adds the
    21,888 batch-norm running means and variances, here in ``state``); the paper's
    Table 6 rounds it to 4.2M. Alpha 0.75, 0.5, 0.25 give 2,585,560, 1,331,592 and
    470,072 here, the paper's 2.6M, 1.3M and 0.5M (Table 6).

    Args:
      num_classes: outputs of the classifier.
      width_multiplier: alpha, the factor on every layer's filters (0.25-1.0 in the
        paper; any positive value).
      dropout: drop rate before the classifier (Keras' default 1e-3).
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
    """
    if not width_multiplier > 0:
        raise ValueError(f"mobilenet_v1: expected a positive width_multiplier, got "
                         f"{width_multiplier!r}")
    layers = [conv_bn(int(32 * width_multiplier), 3, stride=2, padding="SAME", activation=relu6,
                      impl=impl, **_BN)]
    for filters, stride in _BLOCKS:
        layers.append(nn.serial(
            nn.depthwise_conv(3, stride=stride, padding="SAME", use_bias=False, impl=impl),
            nn.batch_norm(**_BN), relu6,
            conv_bn(int(filters * width_multiplier), 1, activation=relu6, impl=impl, **_BN),
            name="separable_block"))
    layers += [nn.global_avg_pool, nn.dropout(dropout), nn.dense(num_classes)]
    return images(nn.serial(*layers, name="mobilenet_v1"))
