"""Optimizers, schedules and clipping in optax's protocol, written from their equations.

``opt = fnnet.optim.adam(lr)``; ``state = opt.init(params)``;
``updates, state = opt.update(grads, state, params)``;
``params = fnnet.optim.apply_updates(params, updates)``. Every optimizer, schedule and
clipping transform has optax's name, arguments and defaults, so fnnet and optax
pieces chain with each other. Files: ``base`` (protocol, ``chain``, ``scale``...),
``transforms`` (moment estimates, momentum, weight decay), ``clipping``,
``schedules``, ``alias`` (the optimizers).

Imports: jax only.
"""
from fnnet.optim.base import *  # noqa: F401,F403
from fnnet.optim.transforms import *  # noqa: F401,F403
from fnnet.optim.clipping import *  # noqa: F401,F403
from fnnet.optim.schedules import *  # noqa: F401,F403
from fnnet.optim.alias import *  # noqa: F401,F403
from fnnet.optim.freeze import *  # noqa: F401,F403
