"""Parameter counts of the zoo at 224x224x3 and 1000 classes (no compute: init under
jax.eval_shape), against the published figures and against PyTorch models built here
from the same layer lists (on the meta device: no memory, no init)."""
import jax
import jax.numpy as jnp
import pytest

from fnnet import models, nn

SPEC = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)

# torchvision's published num_params (torchvision.models.*_Weights.IMAGENET1K_V1.meta)
# and Keras' trainable parameters of MobileNet().
PUBLISHED = {
    "alexnet": (models.alexnet, {}, 61_100_840),
    "vgg16": (models.vgg16, {}, 138_357_544),
    "vgg19": (models.vgg19, {}, 143_667_240),
    "vgg16_bn": (models.vgg16, {"batch_norm": True}, 138_365_992),
    "vgg19_bn": (models.vgg19, {"batch_norm": True}, 143_678_248),
    "resnet18": (models.resnet18, {}, 11_689_512),
    "resnet34": (models.resnet34, {}, 21_797_672),
    "resnet50": (models.resnet50, {}, 25_557_032),
    "googlenet": (models.googlenet, {}, 6_624_904),
    "googlenet_aux": (models.googlenet, {"aux_logits": True}, 13_004_888),
    "mobilenet_v1": (models.mobilenet_v1, {}, 4_231_976),
}


def _count(model, spec=SPEC):
    params, _ = jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))
    return nn.count_params(params)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(name):
    fn, kwargs, published = PUBLISHED[name]
    assert _count(fn(**kwargs)) == published


def test_mobilenet_width_multiplier_and_batch_norm_state():
    model = models.mobilenet_v1()
    _, state = jax.eval_shape(lambda k: model.init(k, SPEC), jax.random.key(0))
    # Keras' MobileNet(): 4,253,864 total = 4,231,976 trainable + 21,888 BN statistics.
    assert nn.count_params(state) == 21_888
    # Howard et al. (2017), Table 6: alpha 0.75, 0.5, 0.25 -> 2.6M, 1.3M, 0.5M.
    for alpha, millions in ((0.75, 2.6), (0.5, 1.3), (0.25, 0.5)):
        assert round(_count(models.mobilenet_v1(width_multiplier=alpha)) / 1e6, 1) == millions
    with pytest.raises(ValueError, match="mobilenet_v1: expected a positive width_multiplier"):
        models.mobilenet_v1(width_multiplier=0)


def test_num_classes():
    assert _count(models.resnet18(10)) == 11_689_512 - 990 * 513
    assert _count(models.googlenet(10)) == 6_624_904 - 990 * 1025


# ---------------------------------------------------------------------------
# The same layer lists in PyTorch (torchvision's definitions, written out here)

def _torch_models(torch):
    tnn = torch.nn
    meta = {"device": "meta"}

    def conv(i, o, k, s=1, p=0, bias=True, groups=1):
        return tnn.Conv2d(i, o, k, s, p, bias=bias, groups=groups, **meta)

    def bn(c):
        return tnn.BatchNorm2d(c, **meta)

    def linear(i, o):
        return tnn.Linear(i, o, **meta)

    def alexnet():
        return tnn.Sequential(conv(3, 64, 11, 4, 2), conv(64, 192, 5, 1, 2),
                              conv(192, 384, 3, 1, 1), conv(384, 256, 3, 1, 1),
                              conv(256, 256, 3, 1, 1),
                              linear(256 * 6 * 6, 4096), linear(4096, 4096), linear(4096, 1000))

    def vgg(cfg, batch_norm=False):
        layers, c = [], 3
        for v in cfg:
            if v != "M":
                layers.append(conv(c, v, 3, 1, 1))
                if batch_norm:
                    layers.append(bn(v))
                c = v
        return tnn.Sequential(*layers, linear(512 * 7 * 7, 4096), linear(4096, 4096),
                              linear(4096, 1000))

    def resnet(bottleneck, blocks):
        layers, c = [conv(3, 64, 7, 2, 3, bias=False), bn(64)], 64
        exp = 4 if bottleneck else 1
        for stage, (w, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            for i in range(n):
                s = 2 if stage and not i else 1
                if bottleneck:
                    layers += [conv(c, w, 1, bias=False), bn(w), conv(w, w, 3, s, 1, bias=False),
                               bn(w), conv(w, 4 * w, 1, bias=False), bn(4 * w)]
                else:
                    layers += [conv(c, w, 3, s, 1, bias=False), bn(w),
                               conv(w, w, 3, 1, 1, bias=False), bn(w)]
                if s != 1 or c != w * exp:
                    layers += [conv(c, w * exp, 1, s, bias=False), bn(w * exp)]
                c = w * exp
        return tnn.Sequential(*layers, linear(512 * exp, 1000))

    def basic(i, o, k, p=0):  # torchvision's BasicConv2d
        return [conv(i, o, k, 1, p, bias=False), bn(o)]

    def inception(i, c1, c3r, c3, c5r, c5, pp):
        # torchvision: the "5x5" branch is a 3x3 conv.
        return (basic(i, c1, 1) + basic(i, c3r, 1) + basic(c3r, c3, 3, 1) + basic(i, c5r, 1)
                + basic(c5r, c5, 3, 1) + basic(i, pp, 1)), c1 + c3 + c5 + pp

    def googlenet(aux):
        layers = basic(3, 64, 7) + basic(64, 64, 1) + basic(64, 192, 3)
        c = 192
        for spec in ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64),
                     (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
                     (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                     (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128),
                     (384, 192, 384, 48, 128, 128)):
            more, c = inception(c, *spec)
            layers += more
        layers.append(linear(1024, 1000))
        if aux:
            for i in (512, 528):  # InceptionAux
                layers += basic(i, 128, 1) + [linear(2048, 1024), linear(1024, 1000)]
        return tnn.Sequential(*layers)

    def mobilenet():
        layers, c = [conv(3, 32, 3, 2, 1, bias=False), bn(32)], 32
        for o in (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024):
            layers += [conv(c, c, 3, 1, 1, bias=False, groups=c), bn(c),
                       conv(c, o, 1, bias=False), bn(o)]
            c = o
        return tnn.Sequential(*layers, conv(1024, 1000, 1))  # Keras' conv_preds

    d = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    e = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M")
    return {"alexnet": alexnet, "vgg16": lambda: vgg(d), "vgg19": lambda: vgg(e),
            "vgg16_bn": lambda: vgg(d, True), "vgg19_bn": lambda: vgg(e, True),
            "resnet18": lambda: resnet(False, (2, 2, 2, 2)),
            "resnet34": lambda: resnet(False, (3, 4, 6, 3)),
            "resnet50": lambda: resnet(True, (3, 4, 6, 3)),
            "googlenet": lambda: googlenet(False), "googlenet_aux": lambda: googlenet(True),
            "mobilenet_v1": mobilenet}


def test_counts_match_pytorch_layer_lists():
    torch = pytest.importorskip("torch")
    for name, build in _torch_models(torch).items():
        torch_count = sum(p.numel() for p in build().parameters())
        assert torch_count == PUBLISHED[name][2], name
