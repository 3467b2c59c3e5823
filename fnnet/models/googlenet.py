"""GoogLeNet, Inception v1 (Szegedy et al., 2015, "Going deeper with convolutions"), as
defined in torchvision.

Imports: fnnet.nn, fnnet.functional.
"""
from __future__ import annotations

import jax

from fnnet import nn
from fnnet.models._layers import adaptive_avg_pool, conv_bn, images, max_pool_ceil

__all__ = ["inception", "googlenet"]

_EPS = 1e-3  # torchvision's BasicConv2d: BatchNorm2d(eps=0.001)


def _cbr(features: int, window: int, **kwargs) -> nn.Module:
    return conv_bn(features, window, eps=_EPS, **kwargs)


def inception(c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int, *,
              five_by_five: bool = True, impl: str = "auto") -> nn.Module:
    """The Inception v1 module: four branches on one input, concatenated on channels::

        1x1 conv c1
        1x1 conv c3_reduce -> 3x3 conv c3
        1x1 conv c5_reduce -> 5x5 conv c5        (3x3 if not five_by_five)
        3x3 max pool, stride 1 -> 1x1 conv pool_proj

    Every conv is conv -> batch norm -> ReLU, padded to keep the map size; the output
    has ``c1 + c3 + c5 + pool_proj`` channels. The 1x1 "reduce" convs are the
    bottlenecks that make the 3x3 and 5x5 convs cheap: on 28x28x192, a 5x5 conv to 32
    channels costs 120,422,400 multiplications, a 1x1 to 16 then 5x5 to 32
    12,443,648 (see :func:`fnnet.nn.count_multiplies`). ``impl`` is the conv lowering
    of every layer (see :mod:`fnnet.functional._lowering`).
    """
    k = 5 if five_by_five else 3
    return nn.parallel(
        _cbr(c1, 1, impl=impl),
        nn.serial(_cbr(c3_reduce, 1, impl=impl), _cbr(c3, 3, padding=1, impl=impl)),
        nn.serial(_cbr(c5_reduce, 1, impl=impl), _cbr(c5, k, padding=k // 2, impl=impl)),
        nn.serial(nn.max_pool(3, 1, padding=1, impl=impl), _cbr(pool_proj, 1, impl=impl)),
        combine="concat", name="inception",
    )


def _aux_head(num_classes: int, impl: str) -> nn.Module:
    """torchvision's ``InceptionAux``: adaptive 4x4 average pool -> 1x1 conv 128 ->
    flatten -> dense 1024 -> ReLU -> dropout 0.7 -> dense num_classes."""
    return nn.serial(adaptive_avg_pool(4), _cbr(128, 1, impl=impl), nn.flatten, nn.dense(1024),
                     nn.relu, nn.dropout(0.7), nn.dense(num_classes), name="aux_head")


def googlenet(num_classes: int = 1000, *, aux_logits: bool = False, five_by_five: bool = False,
              dropout: float = 0.2, impl: str = "auto") -> nn.Module:
    """GoogLeNet (Szegedy et al., 2015, Table 1) as defined in torchvision
    (``torchvision.models.googlenet``), channels last; returns logits.

    Stem: 7x7 conv 64 stride 2 -> 3x3 max pool stride 2 -> 1x1 conv 64 -> 3x3 conv 192
    -> 3x3 max pool stride 2; inception 3a, 3b -> max pool; 4a-4e -> 2x2 max pool;
    5a, 5b; global average pooling -> dropout -> dense. Every conv is conv -> batch
    norm (eps 1e-3) -> ReLU, as in torchvision (the paper predates batch norm); max
    pools use PyTorch's ``ceil_mode=True``.

    Parameters at 224x224x3 and 1000 classes: 6,624,904 without the auxiliary heads
    and 13,004,888 with them, torchvision's published count
    (``GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"]``) and the sum over its
    layer list. Like torchvision, the "5x5" branch of every inception module is a
    3x3 conv by default (a known slip of torchvision's definition, kept there for its
    weights); ``five_by_five=True`` gives the paper's 5x5 convs (7,005,832
    parameters without aux heads).

    With ``aux_logits=True`` the two auxiliary classifiers (on the outputs of 4a and
    4d) are built; ``apply(..., train=True)`` then returns ``(logits, aux1, aux2)``
    and evaluation returns ``logits`` alone, as in torchvision (the paper weights the
    auxiliary losses by 0.3 and discards the heads at inference). :func:`fnnet.nn.summary`
    traces evaluation, so it lists no rows for the heads; its total counts them.

    Args:
      num_classes: outputs of the classifier (and of the auxiliary heads).
      aux_logits: build the two auxiliary heads.
      five_by_five: 5x5 convs in the third branch (the paper) instead of 3x3.
      dropout: drop rate before the final dense layer (0.2 in torchvision, 0.4 in
        the paper).
      impl: the conv lowering of every layer (see :mod:`fnnet.functional._lowering`).
    """
    def inc(*channels):
        return inception(*channels, five_by_five=five_by_five, impl=impl)

    trunk = (
        nn.serial(_cbr(64, 7, stride=2, padding=3, impl=impl), max_pool_ceil(3, 2, impl),
                  _cbr(64, 1, impl=impl), _cbr(192, 3, padding=1, impl=impl),
                  max_pool_ceil(3, 2, impl),
                  inc(64, 96, 128, 16, 32, 32),       # 3a
                  inc(128, 128, 192, 32, 96, 64),     # 3b
                  max_pool_ceil(3, 2, impl),
                  inc(192, 96, 208, 16, 48, 64),      # 4a
                  name="to_4a"),
        nn.serial(inc(160, 112, 224, 24, 64, 64),     # 4b
                  inc(128, 128, 256, 24, 64, 64),     # 4c
                  inc(112, 144, 288, 32, 64, 64),     # 4d
                  name="to_4d"),
        nn.serial(inc(256, 160, 320, 32, 128, 128),   # 4e
                  max_pool_ceil(2, 2, impl),
                  inc(256, 160, 320, 32, 128, 128),   # 5a
                  inc(384, 192, 384, 48, 128, 128),   # 5b
                  nn.global_avg_pool, nn.dropout(dropout), nn.dense(num_classes),
                  name="to_logits"),
    )
    if not aux_logits:
        return images(nn.serial(*trunk, name="googlenet"))

    heads = {"aux1": _aux_head(num_classes, impl), "aux2": _aux_head(num_classes, impl)}

    def init(key, x):
        spec = nn.spec_of(x)
        params, state = {}, {}
        for i, m in enumerate(trunk):
            k = str(i)
            params[k], state[k] = m.init(jax.random.fold_in(key, i), spec)
            if i < 2:  # the heads read the outputs of 4a and 4d
                spec = jax.eval_shape(lambda p, s, v, m=m: m.apply(p, s, v)[0],
                                      params[k], state[k], spec)
                name = f"aux{i + 1}"
                params[name], state[name] = heads[name].init(jax.random.fold_in(key, 3 + i), spec)
        return params, state

    def apply(params, state, x, *, key=None, train=False):
        new_state, aux = {}, []
        for i, m in enumerate(trunk):
            k = str(i)
            x, new_state[k] = nn.call(m, k, params[k], state[k], x, key=nn.child_key(key, i),
                                      train=train)
            if i < 2:
                name = f"aux{i + 1}"
                if train:
                    y, new_state[name] = nn.call(heads[name], name, params[name], state[name], x,
                                                 key=nn.child_key(key, 3 + i), train=True)
                    aux.append(y)
                else:
                    new_state[name] = state[name]
        return ((x, *aux) if train else x), new_state

    return images(nn.Module(init, apply, "googlenet"))
