"""style_transfer: Gatys et al. (2016) neural style transfer and texture synthesis on a VGG-19.

Gatys, Ecker & Bethge (2016, "Image style transfer using convolutional neural
networks") optimise the pixels of an image so that its deep features match a content
image's at one layer and its Gram matrices match a style image's at several. No
ImageNet-trained VGG weights ship in any installable package, so by default the
network is a *randomly initialised* VGG-19 (He normal weights, average pooling), as in
He, Wang & Hopcroft (2016, "A powerful generative model using random weights for the
deep image representation"), who report style transfer and texture synthesis with
random weights competitive with the trained network's. ``weights`` takes the path of a
user's own PyTorch VGG-19 ``state_dict`` (``torch.save(torchvision.models.vgg19(
weights="IMAGENET1K_V1").state_dict(), path)``), converted by ``fnnet.interop.vgg``.

Images come from ``skimage.data``: content astronaut, coffee or chelsea; style the
textures brick, grass or gravel (grey, repeated over three channels). Each is cropped to
a centred square and resized to ``size`` pixels. Costs are the course notes'
(``fnnet.vision.style``): content at ``conv4_2``, style at ``conv1_1`` ... ``conv5_1``
with weight 0.2 each, ``J = alpha J_content + beta J_style``, Adam on the pixels
(``fnnet.vision.style.transfer``, one compiled ``lax.scan``; the loop is the subject,
so it is not ``fnnet.train.fit``), the image clipped to [0, 1]. Texture synthesis is
the same loop with the content term dropped, started from the style image's mean colour
plus uniform noise of amplitude ``texture_noise`` (from white noise the same budget
matches the Gram matrices to 1e-4 of their start and still looks like noise).

Full run (128 px, astronaut and brick, random VGG-19 seed 0, 100 + 100 Adam steps at
learning rate 0.03, alpha 1, beta 10; 108 s wall on 2 CPU cores shared at a load
average of ~8, of which 44 s the transfer loop with its compilation and 8 s the
texture loop, the rest imports, the images, the initialisation and the compiled VGG-19
passes for the targets and the final costs; 123-177 s in runs at load 10-12). It took
1,115 s (load ~18) while XLA:CPU ran the convolutions' backward pass inside the
compiled loop as emitted loop nests; fnnet's CPU conv now writes it in the layout of
XLA's conv library (``fnnet.functional.conv._conv_canonical``), and the first layer
(3 -> 64 channels) is XLA's conv instead of im2col; the costs below came out the same
to the digits printed. The style cost falls from 0.968 (the content image) to 0.0043
(0.44% of it; its minimum, 0.0011 at step 15, is traded back for content) while the
content cost rises from 0 to 0.345. The result keeps the astronaut's layout with the colours pulled toward the grey-green of the texture and a
fine stroke texture, but shows no bricks; the texture synthesis lowers its style cost
from 2.2e-3 to 8.9e-6 and grows vertical elongated strokes in the bricks' direction,
without their mortar grid. That is what a random VGG-19 with 100 Adam steps gives
here; He et al. ran L-BFGS for thousands of iterations, and a trained VGG-19
(``--set weights=...``) is the reference setting of Gatys et al. L-BFGS is not
implemented: with the loop at about a third of a second per step, 100 Adam steps
already run in under a minute, and the costs have settled (the style cost has been
within 0.0029-0.0043 since step 40, the texture's still falls slowly).
"""
from __future__ import annotations

import base64
import dataclasses
import io
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import nn
from fnnet.models import vgg
from fnnet.train.config import check_config, require
from fnnet.vision import style

CPU_SECONDS = 108  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it

CONTENTS = ("astronaut", "coffee", "chelsea")
STYLES = ("brick", "grass", "gravel")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                         # seed of the random VGG-19 weights and the texture's start noise
    content: str = "astronaut"            # content image from skimage.data
    style: str = "brick"                  # style (texture) image from skimage.data
    size: int = 128                       # side of the square images, pixels
    content_layer: str = "relu4_2"        # layer of the content cost
    style_layers: tuple[str, ...] = STYLE_LAYERS  # layers of the style cost, each weighted 1/len
    alpha: float = 1.0                    # weight of the content cost
    beta: float = 10.0                    # weight of the style cost
    tv_weight: float = 0.0                # weight of the total variation
    steps: int = 100                      # Adam steps of the transfer
    texture_steps: int = 100              # Adam steps of the texture synthesis (0: none)
    learning_rate: float = 0.03           # Adam step size on pixels in [0, 1]
    texture_noise: float = 0.05           # texture start: the style's mean grey plus this much uniform noise
    pool: str = "avg"                     # VGG pooling: "avg" (Gatys et al.) or "max"
    weights: str | None = None            # path of a PyTorch VGG-19 state_dict (None: random weights)
    log_every: int = 5                    # steps between two points of the history

    def __post_init__(self):
        check_config(self, positive=("size", "steps", "learning_rate", "log_every", "beta"),
                     nonnegative=("seed", "texture_steps", "alpha", "tv_weight", "texture_noise"),
                     choices={"content": CONTENTS, "style": STYLES, "pool": ("avg", "max")},
                     nonempty=("style_layers",))
        names = vgg.vgg_layer_names(19)
        for field, layers in (("content_layer", (self.content_layer,)), ("style_layers", self.style_layers)):
            bad = [n for n in layers if n not in names]
            require(self, field, not bad, f"VGG-19 layer names (conv1_1, relu1_1, ..., pool5: "
                                          f"fnnet.models.vgg.vgg_layer_names(19)) but {bad} are not")
        require(self, "size", self.size >= 32, ">= 32 (five 2x2 pools)")
        if self.weights is not None:
            require(self, "weights", os.path.isfile(self.weights), "the path of an existing state_dict file")


def load_image(name: str, size: int) -> np.ndarray:
    """``skimage.data.<name>()`` as float32 ``(size, size, 3)`` in [0, 1]: the centred square
    crop, resized with anti-aliasing; grey images repeated over three channels."""
    import skimage.data
    import skimage.transform
    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return skimage.transform.resize(img, (size, size), anti_aliasing=True).astype(np.float32)


def network(config: Config):
    """The VGG-19 conv layers, their names and params: random (seed) or a user's state_dict."""
    layers = vgg.vgg_layers(19, pool=config.pool)
    spec = jax.ShapeDtypeStruct((1, config.size, config.size, 3), jnp.float32)
    serial = nn.serial(*layers)
    if config.weights is None:
        params, state = serial.init(jax.random.key(config.seed), spec)
    else:
        import torch
        from fnnet import interop
        params, state = interop.vgg(torch.load(config.weights, map_location="cpu"), features_only=True)
        expected = jax.eval_shape(lambda k: serial.init(k, spec), jax.random.key(0))[0]
        got = jax.tree.map(lambda a: tuple(a.shape), params)
        if got != jax.tree.map(lambda a: tuple(a.shape), expected):
            raise ValueError(f"style_transfer: {config.weights} is not a VGG-19 state_dict (expected the "
                             f"features of torchvision's vgg19, got layers {sorted(got, key=int)})")
    return layers, vgg.vgg_layer_names(19), params, state


def _png(image) -> str:
    import imageio.v3 as iio
    buf = io.BytesIO()
    iio.imwrite(buf, (np.clip(np.asarray(image), 0, 1) * 255).round().astype(np.uint8), extension=".png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _history(h: dict, every: int) -> list[dict]:
    h = {k: np.asarray(v) for k, v in h.items()}
    n = len(h["total"])
    return [{"step": t, **{k: float(v[t]) for k, v in h.items()}} for t in sorted(set(range(0, n, every)) | {n - 1})]


def run(config: Config) -> dict:
    start = time.perf_counter()
    content = jnp.asarray(load_image(config.content, config.size))
    style_img = jnp.asarray(load_image(config.style, config.size))
    layers, names, params, state = network(config)
    features = style.feature_fn(layers, params, state, layer_names=names)
    weights = {n: 1.0 / len(config.style_layers) for n in config.style_layers}
    key = jax.random.key(config.seed)

    t0 = time.perf_counter()
    result = style.transfer(features, content, style_img, style_weights=weights,
                            content_layer=config.content_layer, alpha=config.alpha, beta=config.beta,
                            tv_weight=config.tv_weight, steps=config.steps,
                            learning_rate=config.learning_rate)
    image = np.asarray(result.image)
    transfer_seconds = time.perf_counter() - t0
    out = {"history": _history(result.history, config.log_every), "transfer_seconds": transfer_seconds}
    hist = {k: np.asarray(v) for k, v in result.history.items()}
    # the costs of the finished image (the history holds those before each step), from one
    # compiled VGG pass that takes the weights as arguments (as closed-over constants each
    # compile took twice as long)
    wanted = list(weights) + [config.content_layer]
    all_layers = jax.jit(lambda p, s, image: features.apply(p, s, image[None], wanted))
    acts = all_layers(params, state, result.image)
    c_acts = all_layers(params, state, content)[config.content_layer]
    s_acts = all_layers(params, state, style_img)
    final_style = float(style.style_cost(s_acts, acts, weights))
    final_content = float(style.content_cost(c_acts, acts[config.content_layer]))
    out.update(initial_style_cost=float(hist["style"][0]), final_style_cost=final_style,
               final_content_cost=final_content, style_cost_ratio=final_style / float(hist["style"][0]))
    images = {"content": _png(content), "style": _png(style_img), "result": _png(image)}

    if config.texture_steps:
        t0 = time.perf_counter()
        # from the style's mean colour and a little noise: from white noise, 100 Adam steps leave
        # the Gram costs 1e-4 of their start but the image still looks like noise
        start_image = jnp.mean(style_img, axis=(0, 1), keepdims=True) + config.texture_noise * jax.random.uniform(
            jax.random.fold_in(key, 1), style_img.shape, style_img.dtype, -1.0, 1.0)
        texture = style.transfer(features, None, style_img, style_weights=weights, beta=1.0,
                                 steps=config.texture_steps, learning_rate=config.learning_rate,
                                 init=start_image)
        out["texture_seconds"] = time.perf_counter() - t0
        th = np.asarray(texture.history["style"])
        out["texture_history"] = _history({"style": th, "total": th}, config.log_every)
        t_acts = all_layers(params, state, texture.image)
        out["texture_final_style_cost"] = float(style.style_cost(s_acts, t_acts, weights))
        out["texture_initial_style_cost"] = float(th[0])
        images["texture"] = _png(texture.image)
    out["images"] = images
    out["total_seconds"] = time.perf_counter() - start
    return out


def _decode(b64: str) -> np.ndarray:
    import imageio.v3 as iio
    return iio.imread(io.BytesIO(base64.b64decode(b64)), extension=".png")


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images = result["images"]
    panels = [("content", "content"), ("style", "style"), ("result", "result")]
    if "texture" in images:
        panels.append(("texture", "texture synthesis"))
    fig = plt.figure(figsize=(3.0 * len(panels) + 3.6, 3.4))
    grid = fig.add_gridspec(1, len(panels) + 1, width_ratios=[1] * len(panels) + [1.3])
    for i, (k, title) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(_decode(images[k]))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[0, -1])
    steps = [h["step"] for h in result["history"]]
    ax.plot(steps, [h["style"] for h in result["history"]], label="style (transfer)")
    ax.plot(steps, [h["content"] for h in result["history"]], label="content (transfer)")
    if "texture_history" in result:
        ax.plot([h["step"] for h in result["texture_history"]], [h["style"] for h in result["texture_history"]],
                label="style (texture)", linestyle="--")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_title("costs", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out_dir, "style_transfer.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
