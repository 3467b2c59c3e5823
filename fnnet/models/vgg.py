"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2015, "Very deep convolutional networks
for large-scale image recognition", configurations D and E).

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

from fnnet import nn
from fnnet.models._layers import adaptive_avg_pool, images

__all__ = ["vgg16", "vgg19"]

_CONFIGS = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


def _vgg(depth: int, num_classes: int, batch_norm: bool, hidden: int, dropout: float, impl: str):
    layers = []
    for v in _CONFIGS[depth]:
        if v == "M":
            layers.append(nn.max_pool(2, impl=impl))
        else:
            layers.append(nn.conv(v, 3, padding=1, impl=impl))
            if batch_norm:
                layers.append(nn.batch_norm())
            layers.append(nn.relu)
    layers += [adaptive_avg_pool(7), nn.flatten,
               nn.dense(hidden), nn.relu, nn.dropout(dropout),
               nn.dense(hidden), nn.relu, nn.dropout(dropout),
               nn.dense(num_classes)]
    return images(nn.serial(*layers, name=f"vgg{depth}" + ("_bn" if batch_norm else "")))


_DOC = """VGG-{depth} (configuration {config} of Simonyan & Zisserman, 2015) as defined in
    torchvision (``torchvision.models.vgg{depth}``), channels last; returns logits.

    {convs} 3x3 convs (stride 1, padding 1, each followed by ReLU) in five blocks of
    64, 128, 256, 512, 512 filters, each block ending in a 2x2 max pool; an adaptive
    7x7 average pool (the identity at 224x224); then dense ``hidden`` -> ReLU ->
    dropout -> dense ``hidden`` -> ReLU -> dropout -> dense ``num_classes``.

    Parameters at 224x224x3 and 1000 classes: {count:,}, the figure torchvision
    publishes (``VGG{depth}_Weights.IMAGENET1K_V1.meta["num_params"]``) and the sum
    over its layer list (the paper's Table 2 rounds it to {paper}M).
    ``batch_norm=True`` is torchvision's ``vgg{depth}_bn`` (batch norm after every
    conv, {bn_count:,} parameters).

    Args:
      num_classes: outputs of the last layer.
      batch_norm: batch norm after every conv.
      hidden: width of the two hidden dense layers (4096 in the paper).
      dropout: drop rate after each hidden dense layer.
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
"""


def vgg16(num_classes: int = 1000, *, batch_norm: bool = False, hidden: int = 4096,
          dropout: float = 0.5, impl: str = "auto") -> nn.Module:
    return _vgg(16, num_classes, batch_norm, hidden, dropout, impl)


def vgg19(num_classes: int = 1000, *, batch_norm: bool = False, hidden: int = 4096,
          dropout: float = 0.5, impl: str = "auto") -> nn.Module:
    return _vgg(19, num_classes, batch_norm, hidden, dropout, impl)


vgg16.__doc__ = _DOC.format(depth=16, config="D", convs=13, count=138_357_544, paper=138,
                            bn_count=138_365_992)
vgg19.__doc__ = _DOC.format(depth=19, config="E", convs=16, count=143_667_240, paper=144,
                            bn_count=143_678_248)
