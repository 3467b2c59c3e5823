"""Running a range of training steps for :func:`fnnet.train.fit`: one jitted call per
step (batches from :func:`fnnet.data.batches`), or one compiled ``lax.scan`` per epoch
piece whose batch indices come from the epoch's permutation inside the program,
optionally ``jax.vmap``-ed over a population. Without shuffling, and with every batch
full, one ``lax.scan`` runs the whole range across epoch boundaries (batch ``i`` is
the slice ``x[i b : (i + 1) b]``).

Step ``t`` is batch ``i = t mod S`` of epoch ``e = t div S``; the epoch's order is
``permutation(fold_in(key, 2 e), n)`` and the step's key ``fold_in(fold_in(key, 2 e + 1), i)``.

Imports: jax, fnnet.data, fnnet.train.step.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp

from fnnet.data import batches, take_examples
from fnnet.train.step import make_train_step

__all__: list[str] = []


@dataclasses.dataclass(frozen=True)
class BatchOrder:
    """Where step ``t`` takes its batch from: epoch ``t div S``, batch ``t mod S``."""
    key: Any
    n: int
    batch_size: int
    shuffle: bool
    drop_last: bool
    steps_per_epoch: int

    def pieces(self, start: int, end: int):
        """Split steps ``[start, end)`` at epoch boundaries: ``(epoch, i0, i1)`` triples."""
        t = start
        while t < end:
            epoch, i = divmod(t, self.steps_per_epoch)
            stop = min(end - epoch * self.steps_per_epoch, self.steps_per_epoch)
            yield epoch, i, stop
            t = epoch * self.steps_per_epoch + stop


def stepwise(step_fn, order: BatchOrder, x, y, each: bool = False):
    """Steps ``[start, end)`` one jitted call each, batches from :func:`fnnet.data.batches`.
    Returns a function ``(start, end, params, state, opt_state, bar)`` giving the final
    variables and the stacked losses, or (``each``) a generator of
    ``(t, params, state, opt_state, loss)`` after every step ``t``."""
    def gen(start, end, params, state, opt_state, bar):
        for epoch, i0, i1 in order.pieces(start, end):
            shuffle_key = jax.random.fold_in(order.key, 2 * epoch) if order.shuffle else None
            step_key = jax.random.fold_in(order.key, 2 * epoch + 1)
            epoch_batches = batches(x, y, order.batch_size, key=shuffle_key, shuffle=order.shuffle,
                                    drop_last=order.drop_last)
            for i, (xb, yb) in enumerate(itertools.islice(epoch_batches, i0, i1), start=i0):
                params, state, opt_state, loss = step_fn(params, state, opt_state, xb, yb,
                                                         jax.random.fold_in(step_key, i))
                if bar is not None:
                    bar.update(1)
                yield epoch * order.steps_per_epoch + i, params, state, opt_state, loss

    if each:
        return gen

    def run(start, end, params, state, opt_state, bar):
        losses = []
        for _, params, state, opt_state, loss in gen(start, end, params, state, opt_state, bar):
            losses.append(loss)
        return params, state, opt_state, jax.tree.map(lambda *a: jnp.stack(a), *losses)

    return run


def compiled_steps(model, loss_fn, optimizer, penalty, batch_hook, order: BatchOrder, x, y,
                    members: bool = False, batch_metrics: tuple = (), placement=None):
    """Steps ``[start, end)`` as one compiled program per epoch piece: a ``lax.scan`` over
    the full batches, whose indices come from the epoch's permutation inside the
    program, then the smaller last batch if the piece reaches it. With ``members`` the
    program is ``jax.vmap``-ed over a leading axis of ``order.key``, params, state and
    optimizer state (one key stream per member, the data shared). With a
    :class:`~fnnet.train.placement.Placement` the program is compiled with its shardings
    and every batch is constrained to the batch sharding. The program is cached per
    model, loss, optimizer and batching, so repeated calls compile once."""
    if not order.shuffle and (order.drop_last or order.n % order.batch_size == 0):
        return _span_steps(model, loss_fn, optimizer, penalty, batch_hook, order, x, y, members,
                           batch_metrics, placement)
    args = (model, loss_fn, optimizer, penalty, batch_hook, order.n, order.batch_size, order.shuffle,
            members, batch_metrics, placement)
    program = _cached(piece_program, args)

    def run(start, end, params, state, opt_state, bar):
        losses = []
        for epoch, i0, i1 in order.pieces(start, end):
            params, state, opt_state, piece_losses = program(i0, i1, epoch, order.key, params, state,
                                                              opt_state, x, y)
            losses.append(piece_losses)
            if bar is not None:
                bar.update(i1 - i0)
        return params, state, opt_state, jax.tree.map(lambda *a: jnp.concatenate(a, axis=-1), *losses)

    return run


@functools.lru_cache(maxsize=32)
def piece_program(model, loss_fn, optimizer, penalty, batch_hook, n: int, bs: int, shuffle: bool,
                   members: bool, batch_metrics: tuple = (), placement=None):
    step = make_train_step(model, loss_fn, optimizer, penalty=penalty, batch_hook=batch_hook,
                           batch_metrics=dict(batch_metrics), jit=False)
    split = _batch_constraint(placement)
    full = n // bs

    def piece(i0, i1, epoch, key, params, state, opt_state, x, y):
        perm = jax.random.permutation(jax.random.fold_in(key, 2 * epoch), n) if shuffle else jnp.arange(n)
        step_key = jax.random.fold_in(key, 2 * epoch + 1)

        def body(carry, i):
            idx = jax.lax.dynamic_slice_in_dim(perm, i * bs, bs)
            p, s, o, loss = step(*carry, *split(take_examples(x, idx), take_examples(y, idx)), jax.random.fold_in(step_key, i))
            return (p, s, o), loss

        carry, losses = (params, state, opt_state), []
        if i0 < min(i1, full):
            carry, scanned = jax.lax.scan(body, carry, jnp.arange(i0, min(i1, full)))
            losses.append(scanned)
        if i1 > full:  # the smaller last batch
            idx = perm[full * bs:]
            *carry, loss = step(*carry, *split(take_examples(x, idx), take_examples(y, idx)), jax.random.fold_in(step_key, full))
            losses.append(jax.tree.map(lambda a: a[None], loss))
        return (*carry, jax.tree.map(lambda *a: jnp.concatenate(a, axis=-1), *losses))

    if members:
        return jax.jit(lambda i0, i1, *args: jax.vmap(functools.partial(piece, i0, i1),
                                                      in_axes=(None, 0, 0, 0, 0, None, None))(*args),
                       static_argnums=(0, 1))
    return _jit(piece, (0, 1), placement)


def _batch_constraint(placement):
    """``(xb, yb) -> (xb, yb)`` constrained to the placement's batch sharding (identity
    without a placement)."""
    if placement is None:
        return lambda xb, yb: (xb, yb)
    return lambda xb, yb: jax.lax.with_sharding_constraint((xb, yb), placement.batch)


def _jit(program, static, placement):
    """``program(*static, epoch_or_start, key, params, state, opt_state, x, y)`` jitted;
    with a placement, the variables in and out at their shardings and the rest replicated."""
    if placement is None:
        return jax.jit(program, static_argnums=static)
    r = placement.replicated
    variables = (placement.params, placement.state, placement.opt_state)
    return jax.jit(program, static_argnums=static, in_shardings=(r, r) + variables + (r, r),
                   out_shardings=variables + (r,))


def _cached(builder, args):
    try:
        hash(args)
    except TypeError:  # an unhashable piece: build the program for this call only
        return builder.__wrapped__(*args)
    return builder(*args)


def _span_steps(model, loss_fn, optimizer, penalty, batch_hook, order: BatchOrder, x, y, members: bool,
                batch_metrics: tuple = (), placement=None):
    """Steps ``[start, end)`` in data order as one ``lax.scan`` across epochs: step ``t``
    takes the slice ``x[i b : (i + 1) b]`` with ``i = t mod S`` and the key
    ``fold_in(fold_in(key, 2 (t div S) + 1), i)``, as :func:`stepwise` does."""
    program = _cached(span_program, (model, loss_fn, optimizer, penalty, batch_hook, order.batch_size,
                                     order.steps_per_epoch, members, batch_metrics, placement))

    def run(start, end, params, state, opt_state, bar):
        params, state, opt_state, losses = program(end - start, start, order.key, params, state,
                                                   opt_state, x, y)
        if bar is not None:
            bar.update(end - start)
        return params, state, opt_state, losses

    return run


@functools.lru_cache(maxsize=32)
def span_program(model, loss_fn, optimizer, penalty, batch_hook, bs: int, per_epoch: int, members: bool,
                 batch_metrics: tuple = (), placement=None):
    step = make_train_step(model, loss_fn, optimizer, penalty=penalty, batch_hook=batch_hook,
                           batch_metrics=dict(batch_metrics), jit=False)
    split = _batch_constraint(placement)

    def span(length, start, key, params, state, opt_state, x, y):
        def body(carry, t):
            epoch, i = t // per_epoch, t % per_epoch
            xb, yb = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * bs, bs), (x, y))
            step_key = jax.random.fold_in(jax.random.fold_in(key, 2 * epoch + 1), i)
            p, s, o, loss = step(*carry, *split(xb, yb), step_key)
            return (p, s, o), loss

        carry, losses = jax.lax.scan(body, (params, state, opt_state), start + jnp.arange(length))
        return (*carry, losses)

    if members:
        return jax.jit(lambda length, *args: jax.vmap(functools.partial(span, length),
                                                      in_axes=(None, 0, 0, 0, 0, None, None))(*args),
                       static_argnums=0)
    return _jit(span, (0,), placement)
