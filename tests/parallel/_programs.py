"""Small training programs shared by the parallel tests: run in the test process on one
device (the reference) and in subprocesses on 8 simulated CPU devices.

Nothing here imports fnnet.parallel at module level: the single-device reference is
plain ``jax.jit(make_train_step(...))`` on unplaced arrays.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import fnnet.losses as L
import fnnet.nn as nn
from fnnet.nn.attention import multi_head_attention
import fnnet.optim as optim
from fnnet.train import make_train_step

STEPS = 3
BATCH = 16


def mlp():
    """dense(16) -> relu -> dropout -> dense(16) -> batch norm -> relu -> dense(4).

    Layers before a batch norm have no bias: its gradient is zero in exact arithmetic,
    and Adam would turn the rounding noise in it into full-size steps."""
    return nn.serial(nn.dense(16), nn.relu, nn.dropout(0.25), nn.dense(16, use_bias=False),
                     nn.batch_norm(), nn.relu, nn.dense(4))


def bn_mlp(axis_name=None):
    """dense(16) -> batch norm (statistics over ``axis_name`` too) -> relu -> dense(4)."""
    return nn.serial(nn.dense(16, use_bias=False), nn.batch_norm(axis_name=axis_name), nn.relu,
                     nn.dense(4))


def convnet():
    """conv 3x3 -> batch norm -> relu -> dropout -> flatten -> dense(4)."""
    return nn.serial(nn.conv(4, 3, padding="SAME", use_bias=False), nn.batch_norm(), nn.relu, nn.dropout(0.25),
                     nn.flatten, nn.dense(4))


def attention_net():
    """dense(16) over tokens -> 4-head self attention -> layer norm -> flatten -> dense(4).

    No attention biases: softmax ignores the key bias (zero gradient, see ``mlp``)."""
    return nn.serial(nn.dense(16), multi_head_attention(4, use_bias=False), nn.layer_norm(), nn.dropout(0.1),
                     nn.flatten, nn.dense(4))


MODELS = {"mlp": (mlp, (BATCH, 8)), "conv": (convnet, (BATCH, 4, 4, 2)),
          "attention": (attention_net, (BATCH, 4, 8))}

def data(name: str, seed: int = 0):
    """Global batch ``x`` and integer labels ``y``, from NumPy (identical in every process)."""
    shape = MODELS[name][1]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    y = rng.integers(0, 4, size=(shape[0],)).astype(np.int32)
    return x, y


def fit_data(seed: int = 0):
    """``(x, y), (x_dev, y_dev)`` for ``fit`` runs of the MLP: 64 training rows (4 global
    batches) and 32 dev rows, from NumPy (identical in every process)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, MODELS["mlp"][1][1])).astype(np.float32)
    y = rng.integers(0, 4, size=(96,)).astype(np.int32)
    return (x[:64], y[:64]), (x[64:], y[64:])


def setup(name: str):
    """``model, loss_fn, optimizer, params, state, opt_state`` of program ``name``."""
    make, shape = MODELS[name]
    model = make()
    params, state = model.init(jax.random.key(1), jax.ShapeDtypeStruct(shape, jnp.float32))
    optimizer = optim.adam(1e-2)
    return model, L.softmax_cross_entropy_with_integer_labels, optimizer, params, state, optimizer.init(params)


def accuracy(logits, y):
    return jnp.mean(jnp.argmax(logits, -1) == y)


def objective(model, loss_fn):
    def f(params, state, x, y, key):
        out, _ = model.apply(params, state, x, key=key, train=True)
        return loss_fn(out, y)
    return f


def flat(tree, prefix: str) -> dict:
    """``{prefix/path: np.ndarray}`` of every leaf."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def run(name: str, step=None, grad_fn=None, place=None, steps: int = STEPS) -> dict:
    """Train ``steps`` steps of program ``name`` and return losses, the first step's
    gradients, and the final params, state and optimizer state as flat NumPy dicts.

    With ``step``/``grad_fn``/``place`` None: the single-device reference.
    """
    model, loss_fn, optimizer, params, state, opt_state = setup(name)
    x, y = data(name)
    if step is None:
        step = make_train_step(model, loss_fn, optimizer)
        grad_fn = jax.jit(jax.grad(objective(model, loss_fn)))
    if place is not None:
        params, state, opt_state, x, y = place(params, state, opt_state, x, y)
    key = jax.random.key(7)
    out = flat(grad_fn(params, state, x, y, jax.random.fold_in(key, 0)), "grads")
    losses = []
    for i in range(steps):
        params, state, opt_state, loss = step(params, state, opt_state, x, y, jax.random.fold_in(key, i))
        losses.append(np.asarray(loss))
    out.update(flat(params, "params"))
    out.update(flat(state, "state"))
    out.update(flat(opt_state, "opt"))
    out["losses"] = np.asarray(losses)
    return out


def population(shard=None):
    """8 small MLPs trained side by side by ``fit_population`` for 2 epochs; ``shard``
    places ``(params, state, keys)`` (e.g. ``fnnet.parallel.shard_population``)."""
    from fnnet.train import fit_population
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=(64,)).astype(np.int32)
    model = nn.serial(nn.dense(8), nn.relu, nn.dense(4))
    params, state = jax.vmap(lambda k: model.init(k, x))(jax.random.split(jax.random.key(0), 8))
    keys = jax.random.split(jax.random.key(1), 8)
    if shard is not None:
        params, state, keys = shard(params, state, keys)
    result = fit_population(model, L.softmax_cross_entropy_with_integer_labels, optim.adam(1e-2), params,
                            state, (x, y), keys=keys, epochs=2, batch_size=16, progress=False)
    return result.params


FIT_RUNS = {  # name: (program, policy, fit options) of the fit(..., policy=) runs
    "fit_dp_steps": ("mlp", "data_parallel", dict(shuffle=True)),
    "fit_fsdp_scan": ("mlp", "fully_sharded", dict(shuffle=True, compile_epochs=True)),
    "fit_dp_span": ("conv", "data_parallel", dict(shuffle=False, compile_epochs=True)),
    "fit_tp_steps": ("attention", "tensor_parallel", dict(shuffle=True)),
}


def fitted(run_name: str, policy=None):
    """``fit`` of a ``FIT_RUNS`` entry for 2 epochs of 64 examples in batches of 16, with
    dev metrics: the final params, state, optimizer state and history as one flat NumPy
    dict, and the ``FitResult``. ``policy`` None: the single-device reference."""
    from fnnet.train import fit
    name, _, options = FIT_RUNS[run_name]
    model, loss_fn, optimizer, params, state, opt_state = setup(name)
    x, y = _fit_data(name)
    result = fit(model, loss_fn, optimizer, params, state, (x, y), key=jax.random.key(11),
                 batch_size=16, epochs=2, dev_data=(x[:24], y[:24]), metrics={"accuracy": accuracy},
                 progress=False, policy=policy, **options)
    out = flat(result.params, "params")
    out.update(flat(result.state, "state"))
    out.update(flat(result.opt_state, "opt"))
    for key in ("train_loss", "dev_loss", "dev_accuracy"):
        out[f"history_{key}"] = np.asarray([entry[key] for entry in result.history])
    return out, result


def _fit_data(name: str):
    """64 examples of program ``name``'s input shape (four global batches of 16)."""
    shape = (64,) + MODELS[name][1][1:]
    rng = np.random.default_rng(5)
    return (rng.normal(size=shape).astype(np.float32),
            rng.integers(0, 4, size=(64,)).astype(np.int32))
