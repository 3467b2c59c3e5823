"""Neural style transfer (Gatys, Ecker & Bethge, 2016, "Image style transfer using
convolutional neural networks"): the content cost, the Gram matrix, the style cost,
total variation, and the pixel optimisation loop.

With ``a`` the activations ``(n_H, n_W, n_C)`` of one layer, in the course notes'
normalisation::

    J_content(C, G) = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2
    Gram(a)_{k k'}  = sum_{i, j} a_{i j k} a_{i j k'}                   (n_C x n_C)
    J_style^l(S, G) = 1 / (2 n_H n_W n_C)^2 * sum_{k, k'} (Gram(a_S) - Gram(a_G))^2
    J_style(S, G)   = sum_l lambda_l J_style^l(S, G)
    J(G)            = alpha J_content + beta J_style + gamma TV(G)

The loop (:func:`transfer`) optimises the pixels of ``G`` with Adam
(``fnnet.optim.adam``), all steps compiled as one ``lax.scan``; the targets (the
content activations and the style Gram matrices) are computed once before it. The
network is any function ``features(images, names) -> {name: activations}``;
:func:`feature_fn` makes one from a layer list (``fnnet.models.vgg.vgg_layers``) and
its params.

Imports: jax, fnnet.optim, fnnet.vision.features.
"""
from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from fnnet import optim
from fnnet.vision.features import layer_index, layer_outputs

__all__ = ["gram_matrix", "content_cost", "style_layer_cost", "style_cost", "total_variation",
           "feature_fn", "TransferResult", "transfer", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # torchvision's input normalisation (RGB, images in [0, 1])
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_activations(where: str, a) -> None:
    if jnp.ndim(a) not in (3, 4):
        raise ValueError(f"{where}: expected activations (n_H, n_W, n_C) or (N, n_H, n_W, n_C), "
                         f"got shape {jnp.shape(a)}")
    if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
        raise TypeError(f"{where}: expected floating activations, got dtype {jnp.result_type(a)}")


def gram_matrix(a: jax.Array) -> jax.Array:
    """The Gram matrix of activations: ``G_{k k'} = sum_{i, j} a_{i j k} a_{i j k'}``.

    Args:
      a: ``(n_H, n_W, n_C)`` or a batch ``(N, n_H, n_W, n_C)``.

    Returns:
      ``(n_C, n_C)`` (or ``(N, n_C, n_C)``), unnormalised as in the notes
      (``G = A A^T`` with ``A`` the ``n_C x n_H n_W`` unrolled activations).
    """
    _check_activations("gram_matrix", a)
    flat = a.reshape(a.shape[:-3] + (-1, a.shape[-1]))           # (..., n_H n_W, n_C)
    return jnp.einsum("...pk,...pl->...kl", flat, flat)


def content_cost(a_content: jax.Array, a_generated: jax.Array) -> jax.Array:
    """``1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2``; for a batch, the mean over its images.

    Raises:
      ValueError: the two activations differ in shape (content and result images of
        different sizes).
    """
    _check_activations("content_cost", a_content)
    _check_activations("content_cost", a_generated)
    if jnp.shape(a_content) != jnp.shape(a_generated):
        raise ValueError(f"content_cost: expected the content and generated activations to have one shape "
                         f"(content and result images of one size), got {jnp.shape(a_content)} and "
                         f"{jnp.shape(a_generated)}")
    n_h, n_w, n_c = a_content.shape[-3:]
    per_image = jnp.sum(jnp.square(a_content - a_generated), axis=(-3, -2, -1)) / (4 * n_h * n_w * n_c)
    return jnp.mean(per_image)


def style_layer_cost(a_style: jax.Array, a_generated: jax.Array) -> jax.Array:
    """One layer's style cost ``1 / (2 n_H n_W n_C)^2 * sum_{k k'} (Gram(a_S) - Gram(a_G))^2``.

    The style image may have another size than the generated one: each Gram matrix is
    then divided by its own ``n_H n_W`` first, i.e.
    ``1 / (4 n_C^2) sum (Gram(a_S) / (n_H n_W)_S - Gram(a_G) / (n_H n_W)_G)^2``, which
    is the notes' formula when the sizes agree. For a batch, the mean over its images
    (a single style image is compared with every generated one).

    Raises:
      ValueError: the channel counts differ (activations of different layers).
    """
    _check_activations("style_layer_cost", a_style)
    _check_activations("style_layer_cost", a_generated)
    if a_style.shape[-1] != a_generated.shape[-1]:
        raise ValueError(f"style_layer_cost: expected activations with the same channels n_C, got shapes "
                         f"{a_style.shape} and {a_generated.shape}")
    return _style_from_gram(_normalised_gram(a_style), a_generated)


def _normalised_gram(a):
    n_h, n_w = a.shape[-3:-1]
    return gram_matrix(a) / (n_h * n_w)


def _style_from_gram(gram_style, a_generated):
    n_c = a_generated.shape[-1]
    diff = gram_style - _normalised_gram(a_generated)
    per_image = jnp.sum(jnp.square(diff), axis=(-2, -1)) / (4 * n_c * n_c)
    return jnp.mean(per_image)


def _check_weights(where: str, weights) -> dict:
    if not isinstance(weights, Mapping) or not weights:
        raise TypeError(f"{where}: expected a dict {{layer name: weight}} with at least one layer, got "
                        f"{weights!r:.60}")
    return dict(weights)


def style_cost(style_activations: Mapping[str, jax.Array], generated_activations: Mapping[str, jax.Array],
               weights: Mapping[str, float]) -> jax.Array:
    """``sum_l lambda_l J_style^l``: the weighted style costs over layers.

    Args:
      style_activations: ``{layer: activations of the style image}``.
      generated_activations: ``{layer: activations of the generated image}``.
      weights: ``{layer: lambda_l}`` (the notes use 0.2 for each of five layers).

    Raises:
      KeyError: a weighted layer missing from either activations dict.
    """
    weights = _check_weights("style_cost", weights)
    for what, acts in (("style", style_activations), ("generated", generated_activations)):
        missing = [n for n in weights if n not in acts]
        if missing:
            raise KeyError(f"style_cost: no {what} activations for layers {missing}; got {sorted(acts)}")
    return sum(w * style_layer_cost(style_activations[n], generated_activations[n]) for n, w in weights.items())


def total_variation(images: jax.Array, *, power: float = 1.0) -> jax.Array:
    """``TV(x) = sum_{i, j, c} |x_{i+1, j, c} - x_{i j c}|^p + |x_{i, j+1, c} - x_{i j c}|^p``
    (anisotropic; ``p = 1`` is ``tf.image.total_variation``, ``p = 2`` the smooth form).

    Args:
      images: ``(H, W, C)`` or ``(N, H, W, C)``.
      power: ``p > 0``.

    Returns:
      A scalar, or ``(N,)`` for a batch.
    """
    if jnp.ndim(images) not in (3, 4):
        raise ValueError(f"total_variation: expected images (H, W, C) or (N, H, W, C), got shape "
                         f"{jnp.shape(images)}")
    if not power > 0:
        raise ValueError(f"total_variation: expected power > 0, got {power}")
    dh = images[..., 1:, :, :] - images[..., :-1, :, :]
    dw = images[..., :, 1:, :] - images[..., :, :-1, :]
    f = jnp.abs if power == 1 else (lambda d: jnp.abs(d) ** power)
    return jnp.sum(f(dh), axis=(-3, -2, -1)) + jnp.sum(f(dw), axis=(-3, -2, -1))


def feature_fn(layers: Sequence, params, state, *, layer_names: Sequence[str] | None = None,
               mean: Sequence[float] | None = IMAGENET_MEAN,
               std: Sequence[float] | None = IMAGENET_STD) -> Callable:
    """``features(images, names) -> {name: activations}`` for :func:`transfer`, from a
    layer list and the params of ``nn.serial(*layers)`` (see
    :func:`fnnet.vision.features.layer_outputs`). Images in ``[0, 1]`` are normalised
    channel-wise with ``mean`` and ``std`` first (torchvision's ImageNet statistics by
    default; None skips it).

    The returned function also carries ``features.apply(params, state, images, names)``
    (the same with the weights as arguments) and ``features.weights = (params, state)``:
    :func:`transfer` passes the weights to its compiled programs as arguments, which
    halved the compile time of a VGG-19 pass against closing over them as constants.

    Raises (when called):
      KeyError: a layer name that does not exist, naming those that do.
    """
    mean_ = None if mean is None else jnp.asarray(mean, jnp.float32)
    std_ = None if std is None else jnp.asarray(std, jnp.float32)

    def apply(params, state, images, names):
        for n in names:   # before any compute: a misspelt style layer names the layers there are
            layer_index(layers, n, layer_names=layer_names, where="style transfer")
        x = images
        channels = (1,) * (x.ndim - 1) + (-1,)
        if mean_ is not None:
            x = x - mean_.astype(x.dtype).reshape(channels)
        if std_ is not None:
            x = x / std_.astype(x.dtype).reshape(channels)
        return layer_outputs(layers, params, state, x, list(names), layer_names=layer_names)

    def features(images, names):
        return apply(params, state, images, names)

    features.apply, features.weights = apply, (params, state)
    return features


class TransferResult(NamedTuple):
    """The generated image ``(H, W, C)`` and the costs of every step: ``history`` maps
    ``"content"``, ``"style"``, ``"tv"`` and ``"total"`` to arrays of ``steps`` values
    (the costs of the image *before* each step's update)."""
    image: jax.Array
    history: dict


def _as_image(where: str, x, what: str):
    x = jnp.asarray(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"{where}: expected the {what} image as (H, W, C), got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{where}: expected a floating {what} image in [0, 1], got dtype {x.dtype}")
    return x


def transfer(features: Callable, content: jax.Array | None, style: jax.Array, *,
             style_weights: Mapping[str, float], content_layer: str | None = None,
             alpha: float = 10.0, beta: float = 40.0, tv_weight: float = 0.0,
             steps: int = 200, learning_rate: float = 0.02, init: jax.Array | None = None,
             key: jax.Array | None = None, noise: float = 0.0,
             clip: tuple[float, float] | None = (0.0, 1.0)) -> TransferResult:
    """Optimise the pixels of ``G`` to minimise ``alpha J_content + beta J_style + tv_weight TV``.

    Adam (``fnnet.optim.adam(learning_rate)``) on the pixels; after every step the
    image is clipped to ``clip``. All ``steps`` run as one compiled ``lax.scan``.

    Args:
      features: ``features(images (N, H, W, C), names) -> {name: activations}``
        (:func:`feature_fn`).
      content: the content image ``(H, W, C)`` in ``[0, 1]``, or None for texture
        synthesis (style only; ``init`` or ``key`` then gives the start).
      style: the style image ``(H', W', C)``; its size may differ from the content's.
      style_weights: ``{layer: lambda_l}``.
      content_layer: the layer of the content cost (required with ``content``).
      alpha, beta, tv_weight: weights of the content, style and total-variation costs.
      steps: Adam steps.
      learning_rate: Adam's step size (pixels in ``[0, 1]``).
      init: the start image ``(H, W, C)``; by default the content image plus
        ``noise`` times uniform noise in ``[-1, 1)`` (the notes' start), or, without
        content, uniform noise in ``[0, 1)`` of the style image's size.
      key: the key of the noise (required when noise is drawn).
      noise: the amplitude of the noise added to the content image.
      clip: ``(low, high)`` for the pixels, or None.

    Returns:
      A :class:`TransferResult`.

    Raises:
      ValueError: content and start images of different sizes, a missing content
        layer, ``steps`` or ``learning_rate`` not positive; KeyError: a layer name that
        the network does not have (naming those it has). All before any compute.
    """
    where = "transfer"
    style_weights = _check_weights(where, style_weights)
    if not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"{where}: expected steps > 0, got {steps!r}")
    if not learning_rate > 0:
        raise ValueError(f"{where}: expected learning_rate > 0, got {learning_rate!r}")
    style = _as_image(where, style, "style")
    if content is not None:
        content = _as_image(where, content, "content")
        if content_layer is None:
            raise ValueError(f"{where}: expected a content_layer with a content image, got None")
        if content.shape[-1] != style.shape[-1]:
            raise ValueError(f"{where}: expected content and style images with the same channels, got "
                             f"{content.shape} and {style.shape}")
    if init is not None:
        init = _as_image(where, init, "start")
        if content is not None and init.shape != content.shape:
            raise ValueError(f"{where}: expected the result (start) image to have the content image's size "
                             f"{content.shape}, got {init.shape}")
    elif content is not None:
        init = content
        if noise > 0:
            if key is None:
                raise ValueError(f"{where}: noise={noise} needs a key")
            init = content + noise * jax.random.uniform(key, content.shape, content.dtype, -1.0, 1.0)
    else:
        if key is None:
            raise ValueError(f"{where}: texture synthesis (no content image) starts from noise and needs a key")
        init = jax.random.uniform(key, style.shape, style.dtype)
    if clip is not None:
        init = jnp.clip(init, *clip)
    names = list(style_weights) + ([content_layer] if content is not None and content_layer not in style_weights
                                   else [])
    return _run(features, content, style, init, tuple(style_weights.items()), content_layer if content is not None
                else None, tuple(names), float(alpha), float(beta), float(tv_weight), steps, float(learning_rate),
                clip)


def _run(features, content, style, init, style_weights, content_layer, names, alpha, beta, tv_weight, steps,
         learning_rate, clip):
    weights = dict(style_weights)
    style_names = [n for n, _ in style_weights]
    # the network's weights enter the compiled programs as arguments where features carries
    # them (feature_fn), else as the closure's constants
    if hasattr(features, "apply") and hasattr(features, "weights"):
        net, run_net = features.weights, features.apply
    else:
        net, run_net = (), lambda images, names: features(images, names)
    # the targets, once: the style Grams (per unit area) and the content activations
    style_grams = jax.jit(lambda w, s: {n: _normalised_gram(a)
                                        for n, a in run_net(*w, s[None], style_names).items()})(net, style)
    content_target = (None if content_layer is None else
                      jax.jit(lambda w, c: run_net(*w, c[None], [content_layer])[content_layer])(net, content))
    opt = optim.adam(learning_rate)

    def costs(w, image):
        acts = run_net(*w, image[None], list(names))
        j_style = sum(w * _style_from_gram(style_grams[n], acts[n]) for n, w in weights.items())
        j_content = (content_cost(content_target, acts[content_layer]) if content_layer is not None
                     else jnp.zeros((), image.dtype))
        tv = total_variation(image)
        total = alpha * j_content + beta * j_style + tv_weight * tv
        return total, {"content": j_content, "style": j_style, "tv": tv, "total": total}

    @jax.jit
    def loop(w, image):
        def step(carry, _):
            image, opt_state = carry
            (_, parts), grad = jax.value_and_grad(costs, argnums=1, has_aux=True)(w, image)
            updates, opt_state = opt.update(grad, opt_state, image)
            image = optim.apply_updates(image, updates)
            if clip is not None:
                image = jnp.clip(image, *clip)
            return (image, opt_state), parts

        (image, _), history = jax.lax.scan(step, (image, opt.init(image)), None, length=steps)
        return image, history

    image, history = loop(net, init)
    return TransferResult(image, history)
