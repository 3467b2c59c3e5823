"""Strict JAX settings for the whole suite, and shared fixtures.

Implicit rank promotion raises (nothing broadcasts silently) and a reused random key
raises. Float64 is switched on per test with the ``x64`` fixture.
"""
import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)


@pytest.fixture
def x64():
    """Run the test with 64-bit floats enabled (for gradient checks)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    """A NumPy generator for test data (independent of the code under test)."""
    return np.random.default_rng(0)
