"""LeNet-5: the notes variant's summary table, the classic one's parameters, and its
forward pass against a PyTorch twin with the same weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import models, nn


def test_notes_variant_summary_rows():
    rows = nn.summary(models.lenet5(variant="notes"),
                      jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32), print_fn=None)
    weighted = [(r["layer"], r["output_shape"][1:], r["params"]) for r in rows if r["params"]]
    # The notes' table: CONV1 28x28x8, CONV2 10x10x16, FC3 120, FC4 84, softmax 10.
    # conv: (f*f*c_in + 1) * c_out; dense: (n_in + 1) * n_out.
    assert weighted == [("conv", (28, 28, 8), (5 * 5 * 3 + 1) * 8),
                        ("conv", (10, 10, 16), (5 * 5 * 8 + 1) * 16),
                        ("dense", (120,), (5 * 5 * 16 + 1) * 120),
                        ("dense", (84,), (120 + 1) * 84),
                        ("dense", (10,), (84 + 1) * 10)]
    assert [p for *_, p in weighted] == [608, 3216, 48120, 10164, 850]
    pools = [r["output_shape"][1:] for r in rows if r["layer"] == "max_pool"]
    assert pools == [(14, 14, 8), (5, 5, 16)]


def test_classic_params_and_unknown_variant():
    model = models.lenet5()
    params, _ = jax.eval_shape(lambda k: model.init(k, jax.ShapeDtypeStruct((1, 32, 32, 1),
                                                                             jnp.float32)),
                               jax.random.key(0))
    assert nn.count_params(params) == 156 + 2416 + 48120 + 10164 + 850 == 61706
    with pytest.raises(ValueError, match="lenet5: expected variant"):
        models.lenet5(variant="modern")


@pytest.mark.parametrize("variant,channels", [("classic", 1), ("notes", 3)])
def test_forward_matches_pytorch(variant, channels, random_init, rng):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    model = models.lenet5(7, variant=variant)
    x = jnp.asarray(rng.normal(size=(2, 32, 32, channels)), jnp.float32)
    params, state = random_init(model, x, rng, random_affine=True)  # random biases too
    y, _ = jax.jit(model.apply)(params, state, x)
    assert y.shape == (2, 7)

    act = tnn.Tanh if variant == "classic" else tnn.ReLU
    pool = tnn.AvgPool2d if variant == "classic" else tnn.MaxPool2d
    f1 = 6 if variant == "classic" else 8
    ref = tnn.Sequential(tnn.Conv2d(channels, f1, 5), act(), pool(2), tnn.Conv2d(f1, 16, 5), act(),
                         pool(2), tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84),
                         act(), tnn.Linear(84, 7))
    conv_w = lambda k: torch.tensor(np.asarray(k).transpose(3, 2, 0, 1))  # HWIO -> OIHW
    with torch.no_grad():
        for t, k in ((0, "0"), (3, "3")):
            ref[t].weight.copy_(conv_w(params[k]["kernel"]))
            ref[t].bias.copy_(torch.tensor(np.asarray(params[k]["bias"])))
        # Flattening order differs: fnnet (h, w, c), PyTorch (c, h, w).
        k7 = np.asarray(params["7"]["kernel"]).reshape(5, 5, 16, 120).transpose(2, 0, 1, 3)
        ref[7].weight.copy_(torch.tensor(k7.reshape(400, 120).T.copy()))
        ref[7].bias.copy_(torch.tensor(np.asarray(params["7"]["bias"])))
        for t, k in ((9, "9"), (11, "11")):
            ref[t].weight.copy_(torch.tensor(np.asarray(params[k]["kernel"]).T.copy()))
            ref[t].bias.copy_(torch.tensor(np.asarray(params[k]["bias"])))
        expected = ref(torch.tensor(np.asarray(x).transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-4)
