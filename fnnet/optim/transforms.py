"""The building blocks of the optimizers: momentum traces, moment estimates and
weight decay, each a ``GradientTransformation`` written from its update equation.

Notation: ``g_t`` is the incoming update (the gradient, or the output of the previous
transform in a chain), ``t = 1, 2, ...`` the step, ``u_t`` the outgoing update; all
operations are elementwise over every leaf of the tree.

Each transform matches its optax twin (same name, arguments, defaults, state fields
and operation order), checked step by step in ``tests/optim``.

Imports: jax, fnnet.optim.base.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnnet.optim.base import EmptyState, GradientTransformation, ScalarOrSchedule, masked, safe_increment

__all__ = ["TraceState", "ScaleByRssState", "ScaleByRmsState", "ScaleByRmsWithCountState",
           "ScaleByStddevState", "ScaleByStddevWithCountState", "ScaleByAdamState",
           "ScaleByAdadeltaState", "WeightDecayScheduleState",
           "trace", "scale_by_rss", "scale_by_rms", "scale_by_stddev", "scale_by_adam",
           "scale_by_adamax", "scale_by_adadelta", "add_decayed_weights"]


# ----------------------------------------------------------------------------- helpers

def _dtype(dtype):
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


def _zeros_like(tree, dtype=None):
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def _full_like(tree, value):
    return jax.tree.map(lambda x: jnp.full_like(x, value), tree)


def _cast(tree, dtype):
    return tree if dtype is None else jax.tree.map(lambda x: x.astype(dtype), tree)


def _square(g):
    """``|g|^2`` (``g^2`` for real ``g``)."""
    return g ** 2 if jnp.isrealobj(g) else (g.conj() * g).real


def _ema(updates, moments, decay, power):
    """``m_t = (1 - decay) g_t^power + decay m_{t-1}`` (``|g_t|^2`` for power 2)."""
    f = _square if power == 2 else (lambda g: g ** power)
    return jax.tree.map(lambda g, m: (1 - decay) * f(g) + decay * m, updates, moments)


def _debias(moments, decay, count):
    """``m / (1 - decay^count)``; the factor is computed before the cast to the moments' dtype."""
    correction = 1 - decay ** count
    return jax.tree.map(lambda m: m / correction.astype(m.dtype), moments)


def _zero_count():
    return jnp.zeros([], jnp.int32)


# ----------------------------------------------------------------------------- momentum

class TraceState(NamedTuple):
    """Momentum buffer ``trace`` (the params' tree)."""
    trace: Any


def trace(decay: float, nesterov: bool = False, accumulator_dtype: Optional[Any] = None) -> GradientTransformation:
    """Heavy-ball momentum (Polyak 1964) and its Nesterov form (Sutskever et al. 2013).

    ``m_t = g_t + decay m_{t-1}`` (``m_0 = 0``); ``u_t = m_t``, or with ``nesterov``
    ``u_t = g_t + decay m_t``.

    This is the "sum" form used by PyTorch and optax: the course's exponentially
    weighted average ``v_t = beta v_{t-1} + (1 - beta) g_t`` is ``(1 - beta) m_t``, i.e.
    the same path with the learning rate scaled by ``1 - beta``.

    Args:
        decay: momentum coefficient ``mu`` (``beta``).
        nesterov: use the Nesterov look-ahead form.
        accumulator_dtype: dtype of the momentum buffer (default: the params' dtype).
    """
    accumulator_dtype = _dtype(accumulator_dtype)

    def init(params):
        return TraceState(trace=_zeros_like(params, accumulator_dtype))

    def update(updates, state, params=None):
        del params
        new_trace = jax.tree.map(lambda g, m: g + decay * m, updates, state.trace)
        if nesterov:
            updates = jax.tree.map(lambda g, m: g + decay * m, updates, new_trace)
        else:
            updates = new_trace
        return updates, TraceState(trace=_cast(new_trace, accumulator_dtype))

    return GradientTransformation(init, update)


# ----------------------------------------------------------------------------- Adagrad

class ScaleByRssState(NamedTuple):
    """Running sum of squared gradients ``sum_of_squares``."""
    sum_of_squares: Any


def scale_by_rss(initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> GradientTransformation:
    """Adagrad's scaling (Duchi et al. 2011): divide by the root of the summed squares.

    ``G_t = G_{t-1} + g_t^2`` with ``G_0 = initial_accumulator_value``;
    ``u_t = g_t / sqrt(G_t + eps)`` (and ``u_t = 0`` where ``G_t = 0``).

    Differences from the textbook ``g / (sqrt(G) + eps)`` with ``G_0 = 0``: optax (and
    so fnnet) starts the accumulator at 0.1 (as TensorFlow does; PyTorch starts at 0)
    and puts ``eps`` inside the square root. Pass ``initial_accumulator_value=0.0``
    for the paper's accumulator.
    """

    def init(params):
        return ScaleByRssState(sum_of_squares=_full_like(params, initial_accumulator_value))

    def update(updates, state, params=None):
        del params
        sum_of_squares = jax.tree.map(lambda g, s: _square(g) + s, updates, state.sum_of_squares)
        updates = jax.tree.map(lambda s, g: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g,
                               sum_of_squares, updates)
        return updates, ScaleByRssState(sum_of_squares=sum_of_squares)

    return GradientTransformation(init, update)


# ----------------------------------------------------------------------------- RMSprop

class ScaleByRmsState(NamedTuple):
    """EMA of squared gradients ``nu``."""
    nu: Any


class ScaleByRmsWithCountState(NamedTuple):
    """Step ``count`` and EMA of squared gradients ``nu`` (with bias correction)."""
    count: jax.Array
    nu: Any


def _inverse_root(v, eps, eps_in_sqrt):
    return jax.lax.rsqrt(v + eps) if eps_in_sqrt else 1 / (jnp.sqrt(v) + eps)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0,
                 eps_in_sqrt: bool = True, bias_correction: bool = False) -> GradientTransformation:
    """RMSprop's scaling (Hinton 2012): divide by the root of an EMA of squared gradients.

    ``s_t = decay s_{t-1} + (1 - decay) g_t^2`` with ``s_0 = initial_scale``;
    ``u_t = g_t / sqrt(s_t + eps)`` (``eps_in_sqrt=True``, optax's default) or
    ``u_t = g_t / (sqrt(s_t) + eps)`` (``eps_in_sqrt=False``: PyTorch, Keras and the
    course). With ``bias_correction``, ``s_t`` is replaced by ``s_t / (1 - decay^t)``.
    """

    def init(params):
        nu = _full_like(params, initial_scale)
        if bias_correction:
            return ScaleByRmsWithCountState(count=_zero_count(), nu=nu)
        return ScaleByRmsState(nu=nu)

    def update(updates, state, params=None):
        del params
        nu = _ema(updates, state.nu, decay, 2)
        if bias_correction:
            count = safe_increment(state.count)
            nu_hat = _debias(nu, decay, count)
        else:
            nu_hat = nu
        updates = jax.tree.map(lambda v, g: _inverse_root(v, eps, eps_in_sqrt) * g, nu_hat, updates)
        if bias_correction:
            return updates, ScaleByRmsWithCountState(count=count, nu=nu)
        return updates, ScaleByRmsState(nu=nu)

    return GradientTransformation(init, update)


class ScaleByStddevState(NamedTuple):
    """EMAs of the gradients ``mu`` and of their squares ``nu``."""
    mu: Any
    nu: Any


class ScaleByStddevWithCountState(NamedTuple):
    """Step ``count`` and the EMAs ``mu``, ``nu`` (with bias correction)."""
    count: jax.Array
    mu: Any
    nu: Any


def scale_by_stddev(decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0,
                    eps_in_sqrt: bool = True, bias_correction: bool = False) -> GradientTransformation:
    """Centred RMSprop's scaling (Graves 2013): divide by a running standard deviation.

    ``m_t = decay m_{t-1} + (1 - decay) g_t`` (``m_0 = 0``),
    ``s_t = decay s_{t-1} + (1 - decay) g_t^2`` (``s_0 = initial_scale``);
    ``u_t = g_t / sqrt(s_t - m_t^2 + eps)`` or ``g_t / (sqrt(s_t - m_t^2) + eps)``
    with ``eps_in_sqrt=False``; ``bias_correction`` debiases ``m`` and ``s`` by
    ``1 - decay^t``.
    """

    def init(params):
        mu = _zeros_like(params)
        nu = _full_like(params, initial_scale)
        if bias_correction:
            return ScaleByStddevWithCountState(count=_zero_count(), mu=mu, nu=nu)
        return ScaleByStddevState(mu=mu, nu=nu)

    def update(updates, state, params=None):
        del params
        mu = _ema(updates, state.mu, decay, 1)
        nu = _ema(updates, state.nu, decay, 2)
        if bias_correction:
            count = safe_increment(state.count)
            mu_hat, nu_hat = _debias(mu, decay, count), _debias(nu, decay, count)
        else:
            mu_hat, nu_hat = mu, nu
        updates = jax.tree.map(lambda m, v, g: _inverse_root(v - _square(m), eps, eps_in_sqrt) * g,
                               mu_hat, nu_hat, updates)
        if bias_correction:
            return updates, ScaleByStddevWithCountState(count=count, mu=mu, nu=nu)
        return updates, ScaleByStddevState(mu=mu, nu=nu)

    return GradientTransformation(init, update)


# ----------------------------------------------------------------------------- Adam family

class ScaleByAdamState(NamedTuple):
    """Step ``count``, first moment ``mu`` and second (or infinity) moment ``nu``."""
    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0,
                  mu_dtype: Optional[Any] = None, *, nesterov: bool = False) -> GradientTransformation:
    """Adam's scaling (Kingma & Ba 2015, Algorithm 1), optionally with Nesterov momentum (Dozat 2016).

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``, ``v_t = b2 v_{t-1} + (1 - b2) g_t^2``,
    ``m^_t = m_t / (1 - b1^t)``, ``v^_t = v_t / (1 - b2^t)``,
    ``u_t = m^_t / (sqrt(v^_t + eps_root) + eps)``.

    With ``nesterov`` (NAdam): ``m^_t = b1 m_t / (1 - b1^{t+1}) + (1 - b1) g_t / (1 - b1^t)``
    (optax's form; Dozat's Algorithm 2 has a momentum schedule and an extra ``b2`` that
    optax and fnnet omit).

    Args:
        mu_dtype: dtype of the first-moment buffer (default: the params' dtype).
    """
    mu_dtype = _dtype(mu_dtype)

    def init(params):
        return ScaleByAdamState(count=_zero_count(), mu=_zeros_like(params, mu_dtype), nu=_zeros_like(params))

    def update(updates, state, params=None):
        del params
        mu = _ema(updates, state.mu, b1, 1)
        nu = _ema(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        if nesterov:
            mu_hat = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g,
                                  _debias(mu, b1, safe_increment(count)), _debias(updates, b1, count))
        else:
            mu_hat = _debias(mu, b1, count)
        nu_hat = _debias(nu, b2, count)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        nu = jax.tree.map(lambda new, old: new.astype(old.dtype), nu, state.nu)
        return updates, ScaleByAdamState(count=count, mu=_cast(mu, mu_dtype), nu=nu)

    return GradientTransformation(init, update)


def scale_by_adamax(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """AdaMax's scaling (Kingma & Ba 2015, Algorithm 2: Adam with the infinity norm).

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``, ``v_t = max(|g_t| + eps, b2 v_{t-1})``,
    ``u_t = m_t / ((1 - b1^t) v_t)``.

    The paper has ``v_t = max(b2 v_{t-1}, |g_t|)`` and no ``eps``; optax (and fnnet)
    add ``eps`` to ``|g_t|`` so that ``v_t > 0``.
    """

    def init(params):
        return ScaleByAdamState(count=_zero_count(), mu=_zeros_like(params), nu=_zeros_like(params))

    def update(updates, state, params=None):
        del params
        count = safe_increment(state.count)
        mu = _ema(updates, state.mu, b1, 1)
        nu = jax.tree.map(lambda g, v: jnp.maximum(jnp.abs(g) + eps, b2 * v), updates, state.nu)
        mu_hat = _debias(mu, b1, count)
        updates = jax.tree.map(lambda m, v: m / v, mu_hat, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init, update)


# ----------------------------------------------------------------------------- Adadelta

class ScaleByAdadeltaState(NamedTuple):
    """EMAs of squared gradients ``e_g`` and of squared updates ``e_x``."""
    e_g: Any
    e_x: Any


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's scaling (Zeiler 2012, Algorithm 1).

    ``E[g^2]_t = rho E[g^2]_{t-1} + (1 - rho) g_t^2``,
    ``d_t = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t``,
    ``E[dx^2]_t = rho E[dx^2]_{t-1} + (1 - rho) d_t^2``; the step is ``-d_t``
    (``adadelta`` multiplies by ``-learning_rate``, 1 in the paper).
    """

    def init(params):
        return ScaleByAdadeltaState(e_g=_zeros_like(params), e_x=_zeros_like(params))

    def update(updates, state, params=None):
        del params
        e_g = _ema(updates, state.e_g, rho, 2)
        updates = jax.tree.map(lambda g, eg, ex: (jnp.sqrt(ex + eps) / jnp.sqrt(eg + eps)) * g,
                               updates, e_g, state.e_x)
        e_x = _ema(updates, state.e_x, rho, 2)
        return updates, ScaleByAdadeltaState(e_g=e_g, e_x=e_x)

    return GradientTransformation(init, update)


# ----------------------------------------------------------------------------- weight decay

class WeightDecayScheduleState(NamedTuple):
    """Step ``count`` of a scheduled weight decay."""
    count: jax.Array


def add_decayed_weights(weight_decay: ScalarOrSchedule = 0.0, mask=None) -> GradientTransformation:
    """Decoupled weight decay (Loshchilov & Hutter 2019): ``u = g + lambda w``.

    Placed after the gradient scaling and before ``-learning_rate`` (as in ``adamw``),
    the decay is ``-lr lambda w`` per step, independent of the adaptive scaling.
    ``weight_decay`` may be a schedule of the step; ``mask`` (a bool pytree or a
    function of the params) selects the leaves that decay. Requires ``params``.
    """

    def init(params):
        del params
        return WeightDecayScheduleState(count=_zero_count()) if callable(weight_decay) else EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights: update needs the current params; "
                             "call update(grads, state, params)")
        new_state = WeightDecayScheduleState(safe_increment(state.count)) if callable(weight_decay) else state
        if isinstance(weight_decay, (int, float)) and weight_decay == 0.0:
            return updates, new_state
        decay = weight_decay(state.count) if callable(weight_decay) else weight_decay
        return jax.tree.map(lambda g, p: g + decay * p, updates, params), new_state

    tx = GradientTransformation(init, update)
    return tx if mask is None else masked(tx, mask)

