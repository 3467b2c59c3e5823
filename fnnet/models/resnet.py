"""Residual networks (He, Zhang, Ren & Sun, 2016, "Deep residual learning for image
recognition"): the CIFAR ResNets and plain nets of section 4.2, and the ImageNet
ResNet-18/34/50 of torchvision.

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

import jax.numpy as jnp

from fnnet import nn
from fnnet.models._layers import conv_bn, images

__all__ = ["cifar_resnet", "resnet18", "resnet34", "resnet50"]


# ---------------------------------------------------------------------------
# CIFAR-10 ResNets and plain nets (section 4.2)

def _option_a(stride: int, features: int) -> nn.Module:
    """The parameter-free "option A" shortcut: subsample by ``stride`` and pad the new
    channels with zeros (after the old ones)."""
    def fn(x):
        x = x[:, ::stride, ::stride, :]
        extra = features - x.shape[-1]
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))

    return nn.stateless(fn, "shortcut_a")


def _cifar_block(in_features: int, features: int, stride: int, shortcut: bool,
                 projection: bool, impl: str) -> nn.Module:
    body = nn.serial(conv_bn(features, 3, stride=stride, padding=1, impl=impl),
                     conv_bn(features, 3, padding=1, activation=None, impl=impl))
    if not shortcut:
        return nn.serial(body, nn.relu, name="plain_block")
    if stride == 1 and in_features == features:
        skip = None
    elif projection:
        skip = conv_bn(features, 1, stride=stride, activation=None, impl=impl)
    else:
        skip = _option_a(stride, features)
    return nn.serial(nn.residual(body, skip), nn.relu, name="basic_block")


def cifar_resnet(depth: int, num_classes: int = 10, *, shortcut: bool = True,
                 projection: bool = False, impl: str = "auto") -> nn.Module:
    """The CIFAR-10 ResNet of He et al. (2016), section 4.2, or its plain twin.

    ``6n + 2`` weighted layers on ``32x32x3``: a 3x3 conv with 16 filters, then three
    stages of ``n`` basic blocks (two 3x3 convs each) with 16, 32 and 64 filters on
    32x32, 16x16 and 8x8 maps (the first conv of stages 2 and 3 has stride 2), global
    average pooling and a dense layer. Every conv is followed by batch norm (convs
    carry no bias) and ReLU; in a block the second ReLU comes after the addition::

        y = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))

    Shortcuts are identities; where a stage halves the map and doubles the width they
    are option A of the paper, as in its CIFAR experiments: subsample by 2 and pad the
    extra channels with zeros, so residual and plain nets have exactly the same
    parameters. ``projection=True`` uses option B there instead (1x1 conv, stride 2,
    + batch norm). ``shortcut=False`` is the plain net of the same depth and widths
    (each block ``relu(bn(conv(relu(bn(conv(x))))))``).

    Parameters (option A, 10 classes): ResNet-20 269,722 (the paper's "0.27M"), -32
    464,154, -44 658,586, -56 853,018, -110 1,727,962 (the paper's "1.7M"); the count
    of ResNet-20 is also the one printed by the widely used reimplementation
    ``akamaster/pytorch_resnet_cifar10``.

    Args:
      depth: ``6n + 2`` with ``n >= 1`` (20, 32, 44, 56, 110, ...).
      num_classes: outputs of the last layer (logits).
      shortcut: residual blocks (True) or the plain net (False).
      projection: option B projection shortcuts where the shape changes.
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"cifar_resnet: expected depth = 6n + 2 with n >= 1 (8, 14, 20, 32, "
                         f"44, 56, 110, ...), got {depth!r}")
    n = (depth - 2) // 6
    layers = [conv_bn(16, 3, padding=1, impl=impl)]
    in_features = 16
    for stage, features in enumerate((16, 32, 64)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(_cifar_block(in_features, features, stride, shortcut, projection, impl))
            in_features = features
    layers += [nn.global_avg_pool, nn.dense(num_classes)]
    kind = "resnet" if shortcut else "plain"
    return images(nn.serial(*layers, name=f"cifar_{kind}{depth}"))


# ---------------------------------------------------------------------------
# ImageNet ResNets (torchvision's layer lists)

def _basic_block(in_features: int, features: int, stride: int,
                 impl: str = "auto") -> tuple[nn.Module, int]:
    body = nn.serial(conv_bn(features, 3, stride=stride, padding=1, impl=impl),
                     conv_bn(features, 3, padding=1, activation=None, impl=impl))
    skip = None
    if stride != 1 or in_features != features:
        skip = conv_bn(features, 1, stride=stride, activation=None, impl=impl)
    return nn.serial(nn.residual(body, skip), nn.relu, name="basic_block"), features


def _bottleneck(in_features: int, features: int, stride: int,
                impl: str = "auto") -> tuple[nn.Module, int]:
    out = 4 * features
    body = nn.serial(conv_bn(features, 1, impl=impl),
                     conv_bn(features, 3, stride=stride, padding=1, impl=impl),
                     conv_bn(out, 1, activation=None, impl=impl))
    skip = None
    if stride != 1 or in_features != out:
        skip = conv_bn(out, 1, stride=stride, activation=None, impl=impl)
    return nn.serial(nn.residual(body, skip), nn.relu, name="bottleneck"), out


def _imagenet_resnet(name: str, block, blocks: tuple[int, ...], num_classes: int,
                     impl: str) -> nn.Module:
    layers = [conv_bn(64, 7, stride=2, padding=3, impl=impl),
              nn.max_pool(3, 2, padding=1, impl=impl)]
    in_features = 64
    for stage, (features, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            module, in_features = block(in_features, features, stride, impl)
            layers.append(module)
    layers += [nn.global_avg_pool, nn.dense(num_classes)]
    return images(nn.serial(*layers, name=name))


_IMAGENET_DOC = """{title} (He et al., 2016, Table 1), as defined in torchvision
    (``torchvision.models.{fn}``), channels last; returns logits.

    Stem: 7x7 conv 64, stride 2, padding 3 -> batch norm -> ReLU -> 3x3 max pool,
    stride 2, padding 1. Then four stages of {blocks} {kind} blocks with 64, 128, 256,
    512 {width}; the first block of stages 2-4 has stride 2 {where}. Projection
    shortcuts (1x1 conv with the block's stride + batch norm, option B) wherever the
    shape changes, identities elsewhere. Global average pooling and a dense layer.
    Convs have no bias; every conv is followed by batch norm (eps 1e-5).

    Parameters at 1000 classes: {count:,}, the figure torchvision publishes for
    ``{fn}`` (``ResNet{depth}_Weights.IMAGENET1K_V1.meta["num_params"]``), and the
    sum over its ``resnet.py`` layer list. Any input size works (global pooling);
    224x224x3 is the reference.

    Args:
      num_classes: outputs of the last layer.
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
"""


def resnet18(num_classes: int = 1000, *, impl: str = "auto") -> nn.Module:
    return _imagenet_resnet("resnet18", _basic_block, (2, 2, 2, 2), num_classes, impl)


def resnet34(num_classes: int = 1000, *, impl: str = "auto") -> nn.Module:
    return _imagenet_resnet("resnet34", _basic_block, (3, 4, 6, 3), num_classes, impl)


def resnet50(num_classes: int = 1000, *, impl: str = "auto") -> nn.Module:
    return _imagenet_resnet("resnet50", _bottleneck, (3, 4, 6, 3), num_classes, impl)


_BASIC = dict(kind="basic", width="filters (two 3x3 convs per block)", where="")
resnet18.__doc__ = _IMAGENET_DOC.format(title="ResNet-18", fn="resnet18", blocks="2, 2, 2, 2",
                                        count=11_689_512, depth=18, **_BASIC)
resnet34.__doc__ = _IMAGENET_DOC.format(title="ResNet-34", fn="resnet34", blocks="3, 4, 6, 3",
                                        count=21_797_672, depth=34, **_BASIC)
resnet50.__doc__ = _IMAGENET_DOC.format(
    title="ResNet-50", fn="resnet50", blocks="3, 4, 6, 3", count=25_557_032, depth=50,
    kind="bottleneck", width="bottleneck widths (1x1 reduce, 3x3, 1x1 expand to 4x the width)",
    where="on its 3x3 conv (torchvision's \"ResNet v1.5\"; the paper strides the first 1x1 "
          "conv, same parameters)")
