"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), in torchvision's single-tower form.

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

from fnnet import nn
from fnnet.models._layers import adaptive_avg_pool, images

__all__ = ["alexnet"]


def alexnet(num_classes: int = 1000, *, hidden: int = 4096, dropout: float = 0.5,
            impl: str = "auto") -> nn.Module:
    """AlexNet as defined in torchvision (``torchvision.models.alexnet``), channels last;
    returns logits.

    The single-GPU variant of "One weird trick for parallelizing convolutional neural
    networks" (Krizhevsky, 2014) that torchvision ships: no local response
    normalisation, no grouped convs, 64/192/384/256/256 filters::

        conv 64@11x11 s4 p2 -> relu -> max pool 3 s2 -> conv 192@5x5 p2 -> relu
        -> max pool 3 s2 -> conv 384@3x3 p1 -> relu -> conv 256@3x3 p1 -> relu
        -> conv 256@3x3 p1 -> relu -> max pool 3 s2 -> adaptive avg pool 6x6
        -> flatten -> dropout -> dense hidden -> relu -> dropout -> dense hidden -> relu
        -> dense num_classes

    Parameters at 224x224x3 and 1000 classes: 61,100,840, the figure torchvision
    publishes (``AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]``) and the sum over
    its layer list. The adaptive pooling (PyTorch's ``AdaptiveAvgPool2d``) is the
    identity at 224x224 and lets smaller inputs (e.g. 64x64) reach the same 9,216
    features.

    Args:
      num_classes: outputs of the last layer.
      hidden: width of the two hidden dense layers (4096 in the paper; smaller for
        small data sets).
      dropout: drop rate before each hidden dense layer (``apply(..., train=True)``
        then needs a key).
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
    """
    return images(nn.serial(
        nn.conv(64, 11, stride=4, padding=2, impl=impl), nn.relu, nn.max_pool(3, 2, impl=impl),
        nn.conv(192, 5, padding=2, impl=impl), nn.relu, nn.max_pool(3, 2, impl=impl),
        nn.conv(384, 3, padding=1, impl=impl), nn.relu,
        nn.conv(256, 3, padding=1, impl=impl), nn.relu,
        nn.conv(256, 3, padding=1, impl=impl), nn.relu, nn.max_pool(3, 2, impl=impl),
        adaptive_avg_pool(6), nn.flatten,
        nn.dropout(dropout), nn.dense(hidden), nn.relu,
        nn.dropout(dropout), nn.dense(hidden), nn.relu,
        nn.dense(num_classes),
        name="alexnet",
    ))
