"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2015, "Very deep convolutional networks
for large-scale image recognition", configurations D and E), and their convolutional
part alone with its layers named as in the style-transfer literature (``conv1_1``,
``relu1_1``, ..., ``pool5``) for feature extraction.

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

from fnnet import nn
from fnnet.models._layers import adaptive_avg_pool, images

__all__ = ["vgg16", "vgg19", "vgg_layers", "vgg_layer_names", "vgg_features"]

_CONFIGS = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


def _check_depth(where: str, depth: int) -> None:
    if depth not in _CONFIGS:
        raise ValueError(f"{where}: expected depth 16 or 19, got {depth!r}")


def vgg_layers(depth: int = 19, *, batch_norm: bool = False, pool: str = "max",
               impl: str = "auto") -> list[nn.Module]:
    """The convolutional part of VGG-``depth`` as a list of layers, in torchvision's
    order (``torchvision.models.vgg19().features``: the same indices, so
    ``nn.serial(*vgg_layers(19))`` has params ``"0"``, ``"2"``, ... where PyTorch has
    ``features.0``, ``features.2``, ...). :func:`vgg_layer_names` names them.

    Args:
      depth: 16 or 19.
      batch_norm: batch norm after every conv (torchvision's ``vgg19_bn``).
      pool: ``"max"`` (the paper's) or ``"avg"`` (2x2 average pooling, with which Gatys
        et al. found style-transfer images slightly more appealing; same params).
      impl: the conv lowering of every layer.
    """
    _check_depth("vgg_layers", depth)
    if pool not in ("max", "avg"):
        raise ValueError(f"vgg_layers: expected pool 'max' or 'avg', got {pool!r}")
    pooling = nn.max_pool(2, impl=impl) if pool == "max" else nn.avg_pool(2, impl=impl)
    layers = []
    for v in _CONFIGS[depth]:
        if v == "M":
            layers.append(pooling)
        else:
            layers.append(nn.conv(v, 3, padding=1, impl=impl))
            if batch_norm:
                layers.append(nn.batch_norm())
            layers.append(nn.relu)
    return layers


def vgg_layer_names(depth: int = 19, *, batch_norm: bool = False) -> tuple[str, ...]:
    """The name of each layer of :func:`vgg_layers`: ``conv{block}_{i}``, ``bn{block}_{i}``
    (with ``batch_norm``), ``relu{block}_{i}`` and ``pool{block}``, as in Gatys et al.
    (2016) and the Caffe/Keras VGG-19. Caffe's ReLUs run in place, so the papers'
    ``conv4_2`` (content) and ``conv1_1`` ... ``conv5_1`` (style) are the outputs named
    ``relu4_2`` and ``relu1_1`` ... ``relu5_1`` here."""
    _check_depth("vgg_layer_names", depth)
    names, block, i = [], 1, 1
    for v in _CONFIGS[depth]:
        if v == "M":
            names.append(f"pool{block}")
            block, i = block + 1, 1
        else:
            names += [f"conv{block}_{i}"] + ([f"bn{block}_{i}"] if batch_norm else []) + [f"relu{block}_{i}"]
            i += 1
    return tuple(names)


def vgg_features(depth: int = 19, *, batch_norm: bool = False, pool: str = "max",
                 impl: str = "auto") -> nn.Module:
    """``nn.serial(*vgg_layers(...))`` for images: the conv part of VGG-``depth`` alone
    (20,024,384 params for VGG-19, 14,714,688 for VGG-16), returning the last pool's
    ``(N, H/32, W/32, 512)``. Its params are the first entries of :func:`vgg19`'s
    (``"0"`` ... ``"36"``), so a full model's params serve it as they are."""
    return images(nn.serial(*vgg_layers(depth, batch_norm=batch_norm, pool=pool, impl=impl),
                            name=f"vgg{depth}" + ("_bn" if batch_norm else "") + "_features"))


def _vgg(depth: int, num_classes: int, batch_norm: bool, hidden: int, dropout: float, impl: str):
    layers = vgg_layers(depth, batch_norm=batch_norm, impl=impl)
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
