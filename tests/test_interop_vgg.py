"""interop.vgg: a VGG-19 built by hand in plain PyTorch (torchvision's layer list),
randomly initialised, converted and run by fnnet: the same logits, features and batch
norm features; the converted tree is the one fnnet's models initialise."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import interop
from fnnet.models import vgg

torch = pytest.importorskip("torch")

CFG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class TorchVGG(torch.nn.Module):
    """torchvision.models.vgg19 written out (torchvision does not import here)."""

    def __init__(self, num_classes, hidden, batch_norm=False):
        super().__init__()
        layers, c = [], 3
        for v in CFG19:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers.append(torch.nn.Conv2d(c, v, 3, padding=1))
                if batch_norm:
                    layers.append(torch.nn.BatchNorm2d(v))
                layers.append(torch.nn.ReLU(inplace=True))
                c = v
        self.features = torch.nn.Sequential(*layers)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(512 * 7 * 7, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _shapes(tree):
    return jax.tree.map(lambda a: tuple(a.shape), tree)


def test_vgg19_state_dict_gives_pytorch_logits(rng):
    torch.manual_seed(0)
    net = TorchVGG(num_classes=5, hidden=16).eval()
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)       # 2x2 after the five pools: the 7x7 pool mixes
    with torch.no_grad():
        ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
        ref_feats = net.features[:23](torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    params, state = interop.vgg(net.state_dict())
    model = vgg.vgg19(num_classes=5, hidden=16)
    spec = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    assert _shapes(params) == _shapes(jax.eval_shape(lambda k: model.init(k, spec), jax.random.key(0))[0])
    logits, _ = jax.jit(model.apply)(params, state, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(logits), ref, rtol=2e-4, atol=2e-5 * np.abs(ref).max())
    # the features alone, and one layer by name (features.22 is relu4_2 in torchvision's indices)
    fparams, fstate = interop.vgg(net.state_dict(), features_only=True)
    assert sorted(fparams, key=int) == [str(i) for i in range(37)]
    from fnnet.vision.features import layer_outputs
    out = jax.jit(lambda p, s, v: layer_outputs(vgg.vgg_layers(19), p, s, v, ["relu4_2"],
                                                layer_names=vgg.vgg_layer_names(19)))(fparams, fstate, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out["relu4_2"]), ref_feats, rtol=2e-4, atol=2e-5 * np.abs(ref_feats).max())


def test_vgg19_bn_features(rng):
    torch.manual_seed(1)
    net = TorchVGG(num_classes=3, hidden=8, batch_norm=True)
    for m in net.features:
        if isinstance(m, torch.nn.BatchNorm2d):                   # non-trivial running statistics
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = rng.normal(size=(1, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        ref = net.features(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    params, state = interop.vgg(net.state_dict(), features_only=True)
    model = vgg.vgg_features(19, batch_norm=True)
    y, _ = jax.jit(model.apply)(params, state, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), ref, rtol=2e-4, atol=2e-5 * np.abs(ref).max())


def test_not_a_vgg_state_dict():
    with pytest.raises(KeyError, match=r"vgg: state_dict has no entry 'features.<i>.weight'"):
        interop.vgg({"0.weight": np.zeros((3, 3))})
