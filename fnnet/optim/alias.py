"""The optimizers, each a ``chain`` of transforms with optax's name, arguments and defaults.

``learning_rate`` is a float or a schedule ``count -> lr`` (``fnnet.optim.schedules``).
Swapping ``optax.adam`` for ``fnnet.optim.adam`` changes nothing else in a program;
``tests/optim`` runs each optimizer beside its optax twin and checks the trajectories.

Where optax (and so fnnet) departs from the textbook, the docstring says so:
Adagrad's accumulator starts at 0.1 with ``eps`` inside the root; RMSprop puts ``eps``
inside the root by default (``eps_in_sqrt=False`` gives PyTorch's); momentum is the
"sum" form ``m = g + mu m`` (PyTorch's), not the course's average
``v = beta v + (1 - beta) g``; AdaMax adds ``eps`` to ``|g|``; AdamW's decay is
multiplied by the learning rate.

Imports: jax, fnnet.optim.base, fnnet.optim.transforms.
"""
from __future__ import annotations

from typing import Any, Optional

from fnnet.optim.base import GradientTransformation, ScalarOrSchedule, chain, identity, scale_by_learning_rate
from fnnet.optim.transforms import (add_decayed_weights, scale_by_adadelta, scale_by_adam, scale_by_adamax,
                                    scale_by_rms, scale_by_rss, scale_by_stddev, trace)

__all__ = ["sgd", "rmsprop", "adam", "nadam", "adamw", "nadamw", "adamax", "adagrad", "adadelta"]


def sgd(learning_rate: ScalarOrSchedule, momentum: Optional[float] = None, nesterov: bool = False,
        accumulator_dtype: Optional[Any] = None) -> GradientTransformation:
    """Stochastic gradient descent, with optional momentum (Polyak 1964) or Nesterov momentum.

    Plain: ``w_{t+1} = w_t - lr_t g_t``. With ``momentum = mu``:
    ``m_t = g_t + mu m_{t-1}`` and ``w_{t+1} = w_t - lr_t m_t``, or with ``nesterov``
    ``w_{t+1} = w_t - lr_t (g_t + mu m_t)`` (Sutskever et al. 2013).

    Textbook difference: the course's momentum averages, ``v_t = beta v_{t-1} + (1 - beta) g_t``;
    this (PyTorch's and optax's) form sums, so ``m_t = v_t / (1 - beta)``: the same path
    when ``lr`` here is ``(1 - beta)`` times the course's.

    Args:
        learning_rate: ``lr``, a float or a schedule of the step count.
        momentum: ``mu``; ``None`` for no momentum buffer.
        nesterov: use Nesterov's look-ahead form.
        accumulator_dtype: dtype of the momentum buffer (default: the params').
    """
    first = trace(momentum, nesterov, accumulator_dtype) if momentum is not None else identity()
    return chain(first, scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0,
            eps_in_sqrt: bool = True, centered: bool = False, momentum: Optional[float] = None,
            nesterov: bool = False, bias_correction: bool = False) -> GradientTransformation:
    """RMSprop (Hinton 2012, lecture 6e), optionally centred (Graves 2013) and with momentum.

    ``s_t = decay s_{t-1} + (1 - decay) g_t^2`` (``s_0 = initial_scale``),
    ``w_{t+1} = w_t - lr_t g_t / sqrt(s_t + eps)``.

    ``centered`` divides by ``sqrt(s_t - m_t^2 + eps)`` with ``m_t`` the EMA of ``g``;
    ``momentum = mu`` then accumulates the scaled step ``d_t = lr_t g_t / sqrt(...)`` as
    ``b_t = d_t + mu b_{t-1}`` (or ``d_t + mu b_t`` with ``nesterov``) and steps by ``-b_t``;
    ``bias_correction`` divides ``s_t`` (and ``m_t``) by ``1 - decay^t``.

    Textbook difference: optax's default ``eps_in_sqrt=True`` puts ``eps`` inside the
    root; the course, PyTorch and Keras use ``g / (sqrt(s) + eps)`` = ``eps_in_sqrt=False``.
    PyTorch starts ``s_0 = 0`` (the default here), TF1 at 1.
    """
    scaling = scale_by_stddev if centered else scale_by_rms
    return chain(scaling(decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
                         bias_correction=bias_correction),
                 scale_by_learning_rate(learning_rate),
                 trace(decay=momentum, nesterov=nesterov) if momentum is not None else identity())


def adam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         eps_root: float = 0.0, mu_dtype: Optional[Any] = None, *, nesterov: bool = False) -> GradientTransformation:
    """Adam (Kingma & Ba 2015, Algorithm 1).

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``, ``v_t = b2 v_{t-1} + (1 - b2) g_t^2``,
    ``m^_t = m_t / (1 - b1^t)``, ``v^_t = v_t / (1 - b2^t)``,
    ``w_{t+1} = w_t - lr_t m^_t / (sqrt(v^_t + eps_root) + eps)``.

    ``nesterov=True`` is NAdam (Dozat 2016): ``m^_t = b1 m_t / (1 - b1^{t+1}) + (1 - b1) g_t / (1 - b1^t)``.
    Like PyTorch and optax this is Algorithm 1 of the paper, not TensorFlow's variant
    that folds the bias correction into the learning rate (and so ``eps`` differs).
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
                 scale_by_learning_rate(learning_rate))


def nadam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          eps_root: float = 0.0, mu_dtype: Optional[Any] = None, *, nesterov: bool = True) -> GradientTransformation:
    """NAdam (Dozat 2016): :func:`adam` with ``nesterov=True``.

    ``m^_t = b1 m_t / (1 - b1^{t+1}) + (1 - b1) g_t / (1 - b1^t)``, then Adam's step. As in
    optax, Dozat's momentum schedule and his extra ``b2`` factor on ``v^`` are left out.
    """
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


def adamw(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          eps_root: float = 0.0, mu_dtype: Optional[Any] = None, weight_decay: ScalarOrSchedule = 1e-4,
          mask=None, *, nesterov: bool = False) -> GradientTransformation:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    ``w_{t+1} = w_t - lr_t (m^_t / (sqrt(v^_t + eps_root) + eps) + lambda w_t)`` with Adam's
    ``m^, v^`` and ``lambda = weight_decay``; ``mask`` (bool pytree or function of the
    params) chooses the leaves that decay (Adam itself applies to all).

    Textbook difference: the paper multiplies ``lambda`` by the schedule multiplier only;
    here (optax, PyTorch) it is multiplied by the full learning rate.
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
                 add_decayed_weights(weight_decay, mask),
                 scale_by_learning_rate(learning_rate))


def nadamw(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
           eps_root: float = 0.0, mu_dtype: Optional[Any] = None, weight_decay: ScalarOrSchedule = 1e-4,
           mask=None, *, nesterov: bool = True) -> GradientTransformation:
    """NAdamW: :func:`adamw` with ``nesterov=True``."""
    return adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov)


def adamax(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8) -> GradientTransformation:
    """AdaMax (Kingma & Ba 2015, Algorithm 2): Adam with the infinity norm.

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``, ``u_t = max(|g_t| + eps, b2 u_{t-1})``,
    ``w_{t+1} = w_t - lr_t m_t / ((1 - b1^t) u_t)``.

    Textbook difference: the paper has ``u_t = max(b2 u_{t-1}, |g_t|)``; optax adds ``eps``.
    """
    return chain(scale_by_adamax(b1=b1, b2=b2, eps=eps), scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator_value: float = 0.1,
            eps: float = 1e-7) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011).

    ``G_t = G_{t-1} + g_t^2`` (``G_0 = initial_accumulator_value``),
    ``w_{t+1} = w_t - lr_t g_t / sqrt(G_t + eps)``.

    Textbook difference: the paper starts at ``G_0 = 0`` and PyTorch uses
    ``g / (sqrt(G) + eps)`` with ``eps = 1e-10``; optax starts at 0.1 with ``eps``
    inside the root. ``initial_accumulator_value=0.0`` gives the paper's accumulator.
    """
    return chain(scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps),
                 scale_by_learning_rate(learning_rate))


def adadelta(learning_rate: Optional[ScalarOrSchedule] = None, rho: float = 0.9, eps: float = 1e-6,
             weight_decay: ScalarOrSchedule = 0.0, weight_decay_mask=None) -> GradientTransformation:
    """Adadelta (Zeiler 2012).

    ``E[g^2]_t = rho E[g^2]_{t-1} + (1 - rho) g_t^2``,
    ``d_t = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) g_t``,
    ``E[dx^2]_t = rho E[dx^2]_{t-1} + (1 - rho) d_t^2``, ``w_{t+1} = w_t - lr_t d_t``.

    The paper has no learning rate (``lr = 1``); ``learning_rate=None`` (the default)
    gives exactly that, ``u = +d`` unscaled as in optax, so pass a number (PyTorch's
    default is 1.0) to step downhill. ``weight_decay`` adds ``lambda w`` to the
    gradient before the scaling (coupled L2, PyTorch's ``weight_decay``).
    """
    return chain(add_decayed_weights(weight_decay, mask=weight_decay_mask),
                 scale_by_adadelta(rho=rho, eps=eps),
                 scale_by_learning_rate(learning_rate))
