"""Derivatives of every activation (and of the L1 penalty's |w|) at their kinks and at
random points equal PyTorch's autograd in float64: reverse mode, forward mode and the
second derivative; and a conv + relu on the bundled digits, whose pre-activations are
exactly 0 where the zero-padded window sees only zero pixels, has PyTorch's gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import functional as F
from fnnet import losses, nn
from fnnet.models import _layers

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# name: (fnnet function, PyTorch twin, kink points)
CASES = {
    "relu": (F.relu, torch.relu, [0.0]),
    "relu6": (F.relu6, TF.relu6, [0.0, 6.0]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), [0.0]),
    "hard_tanh": (F.hard_tanh, TF.hardtanh, [-1.0, 1.0]),
    "hard_tanh_-2_3": (lambda x: F.hard_tanh(x, -2.0, 3.0), lambda x: TF.hardtanh(x, -2.0, 3.0),
                       [-2.0, 3.0]),
    "elu": (F.elu, TF.elu, [0.0]),
    "elu_1.5": (lambda x: F.elu(x, 1.5), lambda x: TF.elu(x, 1.5), [0.0]),
    "selu": (F.selu, TF.selu, [0.0]),
    "gelu": (F.gelu, TF.gelu, [0.0]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate=True), lambda x: TF.gelu(x, approximate="tanh"),
                  [0.0]),
    "softplus": (F.softplus, TF.softplus, [0.0]),
    "sigmoid": (F.sigmoid, torch.sigmoid, [0.0]),
    "tanh": (F.tanh, torch.tanh, [0.0]),
}


def points(kinks, seed):
    """The kinks themselves, -0.0, points 1e-9 either side of each kink, and random ones
    (|x| < 20, where PyTorch's softplus has not switched to the identity)."""
    rng = np.random.default_rng(seed)
    near = [k + s for k in kinks for s in (-1e-9, 1e-9)]
    return np.concatenate([kinks, [-0.0], near, np.clip(rng.normal(size=12) * 3, -19, 19)])


def torch_derivatives(fn, x, v):
    """PyTorch's ``f(x)``, ``f'(x) v`` (reverse mode), ``f'(x) v`` (forward mode,
    ``torch.func.jvp``) and ``f''(x) v`` (double backward) of an elementwise ``fn``."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    vt = torch.tensor(v, dtype=torch.float64)
    y = fn(xt)
    (g,) = torch.autograd.grad(y, xt, grad_outputs=vt, create_graph=True)
    if g.requires_grad:
        (h,) = torch.autograd.grad(g, xt, grad_outputs=torch.ones_like(vt), allow_unused=True,
                                   materialize_grads=True)
    else:  # the first derivative does not depend on x: the second is 0
        h = torch.zeros_like(xt)
    _, t = torch.func.jvp(fn, (xt.detach(),), (vt,))
    return y.detach().numpy(), g.detach().numpy(), t.numpy(), h.detach().numpy()


def assert_close(actual, expected, what):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives_match_torch(name, x64):
    fn, torch_fn, kinks = CASES[name]
    x = points(kinks, seed=len(name))
    v = np.random.default_rng(1).normal(size=x.shape)
    y_ref, vjp_ref, jvp_ref, second_ref = torch_derivatives(torch_fn, x, v)
    xj, vj = jnp.asarray(x), jnp.asarray(v)

    assert_close(fn(xj), y_ref, f"{name} value")
    assert_close(jax.grad(lambda u: jnp.sum(vj * fn(u)))(xj), vjp_ref, f"{name} grad")
    assert_close(jax.jvp(fn, (xj,), (vj,))[1], jvp_ref, f"{name} jvp")
    # f''(x) v, by reverse-over-reverse and forward-over-reverse.
    first = jax.grad(lambda u: jnp.sum(fn(u)))
    assert_close(jax.grad(lambda u: jnp.sum(vj * first(u)))(xj), second_ref, f"{name} grad of grad")
    assert_close(jax.jvp(first, (xj,), (vj,))[1], second_ref, f"{name} jvp of grad")


def test_kink_slopes_are_pytorchs(x64):
    """The values the tests above compare, written out (PyTorch's documented choices)."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    expected = {("relu", 0.0): 0.0, ("relu6", 0.0): 0.0, ("relu6", 6.0): 0.0,
                ("leaky_relu", 0.0): 0.2, ("hard_tanh", -1.0): 0.0, ("hard_tanh", 1.0): 0.0,
                ("elu_1.5", 0.0): 1.5, ("selu", 0.0): scale * alpha, ("gelu", 0.0): 0.5,
                ("gelu_tanh", 0.0): 0.5, ("softplus", 0.0): 0.5, ("sigmoid", 0.0): 0.25,
                ("tanh", 0.0): 1.0}
    for (name, at), slope in expected.items():
        got = float(jax.grad(CASES[name][0])(jnp.float64(at)))
        assert got == pytest.approx(slope, rel=1e-15), (name, at, got)


MODULES = {
    "relu": (nn.relu, torch.relu), "relu6": (nn.relu6, TF.relu6),
    "models_relu6": (_layers.relu6, TF.relu6), "selu": (nn.selu, TF.selu),
    "hard_tanh": (nn.hard_tanh(-2.0, 3.0), lambda x: TF.hardtanh(x, -2.0, 3.0)),
    "elu": (nn.elu(1.5), lambda x: TF.elu(x, 1.5)),
    "leaky_relu": (nn.leaky_relu(0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "gelu": (nn.gelu(), TF.gelu),
    "gelu_tanh": (nn.gelu(approximate=True), lambda x: TF.gelu(x, approximate="tanh")),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_activation_modules_match_torch_at_kinks(name, x64):
    """The Modules (and the model zoo's relu6) at the kinks of every activation above."""
    module, torch_fn = MODULES[name]
    x = np.array([[-2.0, -1.0, -0.0, 0.0, 1.0, 3.0, 6.0, 0.5]])
    v = np.random.default_rng(5).normal(size=x.shape)
    y_ref, vjp_ref, jvp_ref, _ = torch_derivatives(torch_fn, x, v)
    params, state = module.init(jax.random.key(0), jnp.asarray(x))
    assert params == {} and state == {}
    apply = lambda u: module.apply(params, state, u)[0]
    xj, vj = jnp.asarray(x), jnp.asarray(v)
    assert_close(apply(xj), y_ref, f"{name} value")
    assert_close(jax.grad(lambda u: jnp.sum(vj * apply(u)))(xj), vjp_ref, f"{name} grad")
    assert_close(jax.jvp(apply, (xj,), (vj,))[1], jvp_ref, f"{name} jvp")


def test_maxout_ties_follow_torch_max(x64):
    """Maxout's reference is ``torch.max(group, dim=-1).values``: on a tie the whole
    gradient goes to one unit, the first maximal one (``torch.amax`` and ``jnp.max``
    would split it)."""
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=(4, 12)), 0)  # rounded: many ties within groups of 3
    x[0, :3] = [1.0, 1.0, 0.0]
    x[1, :3] = [2.0, 2.0, 2.0]
    x[2, 3:6] = [-1.0, 0.0, 0.0]
    v = rng.normal(size=(4, 4))
    t = rng.normal(size=(4, 12))

    def torch_maxout(a):
        return a.reshape(a.shape[:-1] + (4, 3)).max(dim=-1).values

    xt = torch.tensor(x, requires_grad=True)
    y_ref = torch_maxout(xt)
    (g_ref,) = torch.autograd.grad(y_ref, xt, grad_outputs=torch.tensor(v))
    _, jvp_ref = torch.func.jvp(torch_maxout, (xt.detach(),), (torch.tensor(t),))
    tied = (x.reshape(4, 4, 3) == x.reshape(4, 4, 3).max(-1, keepdims=True)).sum(-1) > 1
    assert tied.sum() >= 3, "the test input must hold ties"

    fn = lambda a: F.maxout(a, 3)
    xj, vj = jnp.asarray(x), jnp.asarray(v)
    assert_close(fn(xj), y_ref.detach().numpy(), "maxout value")
    grad = jax.grad(lambda a: jnp.sum(vj * fn(a)))
    assert_close(grad(xj), g_ref.numpy(), "maxout grad")
    assert_close(jax.jvp(fn, (xj,), (jnp.asarray(t),))[1], jvp_ref.numpy(), "maxout jvp")
    # The map x -> gradient is piecewise constant: torch's double backward is 0 too.
    assert_close(jax.jacfwd(lambda a: grad(a)[0, :3])(xj), np.zeros((3, 4, 12)), "maxout hessian")


def test_l1_penalty_abs_at_zero_is_torch_abs(x64):
    """``d|w|/dw`` at 0 is 0, as ``torch.abs``' (``jnp.abs``' is 1)."""
    w = np.array([[0.0, -0.0, 1.5], [-2.0, 0.0, 3e-9]])
    v = np.random.default_rng(3).normal(size=w.shape)
    wt = torch.tensor(w, requires_grad=True)
    (g_ref,) = torch.autograd.grad(0.7 * torch.abs(wt).sum(), wt)
    _, jvp_ref = torch.func.jvp(lambda a: 0.7 * torch.abs(a).sum(), (wt.detach(),), (torch.tensor(v),))

    penalty = lambda a: losses.l1_penalty({"w": a}, {"w": True}, coefficient=0.7)
    wj = jnp.asarray(w)
    assert_close(penalty(wj), 0.7 * np.abs(w).sum(), "l1 value")
    assert_close(jax.grad(penalty)(wj), g_ref.numpy(), "l1 grad")
    assert_close(jax.jvp(penalty, (wj,), (jnp.asarray(v),))[1], jvp_ref.numpy(), "l1 jvp")
    assert_close(jax.hessian(penalty)(wj), np.zeros(w.shape * 2), "l1 hessian")


def test_mae_at_zero_residual_is_torch_l1_loss(x64):
    """``mae`` has slope 0 where ``pred == target``, as ``torch.nn.functional.l1_loss``."""
    pred, target = np.array([0.5, -1.0, 2.0, 0.0]), np.array([0.5, 0.0, 2.0, 0.0])
    pt = torch.tensor(pred, requires_grad=True)
    (g_ref,) = torch.autograd.grad(torch.nn.functional.l1_loss(pt, torch.tensor(target)), pt)
    mae = lambda p: losses.mae(p, jnp.asarray(target))
    assert_close(mae(jnp.asarray(pred)), np.mean(np.abs(pred - target)), "mae value")
    assert_close(jax.grad(mae)(jnp.asarray(pred)), g_ref.numpy(), "mae grad")


def test_conv_relu_on_zero_padded_digits_matches_torch(x64):
    """A two-layer conv + relu net on real digits, zero-padded SAME, at initialisation
    (biases 0): the first layer's pre-activations hold exact zeros (196 of 1536, where a
    window sees only zero pixels), and the gradient with respect to kernels, biases and
    input is PyTorch's. The kernels' gradients alone cannot tell relu'(0): an exact 0
    comes from a window of zeros, and that window is what relu'(0) multiplies in the
    kernel's gradient; the biases' and the input's gradients can, and the tie-splitting
    ``jnp.maximum(x, 0)`` (relu'(0) = 1/2) is shown to fail on them."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    images = sklearn_datasets.load_digits().images[:6] / 16.0  # (6, 8, 8), many zero pixels
    rng = np.random.default_rng(4)
    params = {"k1": rng.normal(size=(3, 3, 1, 4)) / 3, "b1": np.zeros(4),
              "k2": rng.normal(size=(3, 3, 4, 3)) / 6, "b2": np.zeros(3)}
    w_out = rng.normal(size=(6, 8, 8, 3))

    def net(p, x, relu):
        z1 = F.conv(x, p["k1"], p["b1"], padding="SAME")
        z2 = F.conv(relu(z1), p["k2"], p["b2"], padding="SAME")
        return jnp.sum(jnp.asarray(w_out) * relu(z2)), (z1, z2)

    x = jnp.asarray(images[..., None])
    pj = jax.tree.map(jnp.asarray, params)
    gradient = jax.jit(jax.value_and_grad(net, argnums=(0, 1), has_aux=True), static_argnums=2)
    (_, (z1, z2)), (grads, grad_x) = gradient(pj, x, F.relu)
    zeros = int(jnp.sum(z1 == 0)) + int(jnp.sum(z2 == 0))
    assert zeros >= 50, f"expected many exact zeros among the pre-activations, got {zeros}"

    # PyTorch: NCHW, OIHW kernels.
    tp = {k: torch.tensor(v if v.ndim == 1 else v.transpose(3, 2, 0, 1), requires_grad=True)
          for k, v in params.items()}
    xt = torch.tensor(images[:, None], requires_grad=True)
    h = torch.relu(TF.conv2d(xt, tp["k1"], tp["b1"], padding=1))
    out = torch.relu(TF.conv2d(h, tp["k2"], tp["b2"], padding=1))
    loss = (torch.tensor(w_out.transpose(0, 3, 1, 2)) * out).sum()
    names = sorted(tp)
    torch_grads = torch.autograd.grad(loss, [tp[k] for k in names] + [xt])
    ref = {k: (g.numpy() if g.ndim == 1 else g.numpy().transpose(2, 3, 1, 0))
           for k, g in zip(names, torch_grads)}
    ref_x = torch_grads[-1].numpy()[:, 0, :, :, None]

    for k in names:
        np.testing.assert_allclose(grads[k], ref[k], rtol=0, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(grad_x, ref_x, rtol=0, atol=1e-12, err_msg="input")

    # The same data catches a relu whose derivative at 0 is 1/2.
    _, (split, split_x) = gradient(pj, x, lambda u: jnp.maximum(u, 0))
    assert float(jnp.max(jnp.abs(split["b1"] - ref["b1"]))) > 1e-3
    assert float(jnp.max(jnp.abs(split_x - ref_x))) > 1e-3
