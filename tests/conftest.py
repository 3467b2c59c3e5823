"""Strict JAX settings for the whole suite, shared fixtures, and reference tests that
cannot skip silently.

Implicit rank promotion raises (nothing broadcasts silently) and a reused random key
raises. Float64 is switched on per test with the ``x64`` fixture.

Reference libraries (PyTorch, and any other oracle a test loads with
``pytest.importorskip``) are optional on a user's machine: their tests skip, and the
run ends with one line saying how many skipped and how to run them. With
``--require-references`` or ``FNNET_REQUIRE_REFERENCES=1`` (set by ``.ci/run``) a
missing reference library fails the test that needs it, naming the library, so CI
cannot pass with the references never run.
"""
import os

import fnnet
import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)

REQUIRE_ENV = "FNNET_REQUIRE_REFERENCES"
_TAG = "reference library missing:"
_HOW = "pip install -e '.[dev,ref]' then make test"
_importorskip = pytest.importorskip
_required = False


def pytest_addoption(parser):
    parser.addoption("--require-references", action="store_true", default=False,
                     help="fail (not skip) a test whose reference library (pytest.importorskip) "
                          f"is missing; also on when {REQUIRE_ENV}=1")


def pytest_configure(config):
    global _required
    _required = (config.getoption("--require-references")
                 or os.environ.get(REQUIRE_ENV, "") not in ("", "0"))


def _importorskip_reference(modname, *args, **kwargs):
    """``pytest.importorskip`` that tags its skip as a missing reference library, and
    fails instead of skipping when references are required."""
    __tracebackhide__ = True
    try:
        return _importorskip(modname, *args, **kwargs)
    except pytest.skip.Exception as exc:
        reason = exc.msg
    if _required:
        pytest.fail(f"{_TAG} {modname!r} is required ({REQUIRE_ENV}=1 or --require-references) "
                    f"but not usable: {reason}; install it with {_HOW}", pytrace=False)
    raise pytest.skip.Exception(f"{_TAG} {modname!r} ({reason})", allow_module_level=True)


# Every importorskip in the suite (module level or inside a test, in any file) goes
# through the wrapper: test modules are imported after this conftest.
pytest.importorskip = _importorskip_reference


def _is_reference_skip(reason: str) -> bool:
    # The wrapper's tag, or the messages of an unwrapped pytest.importorskip.
    return _TAG in reason or "could not import '" in reason or ", required is: " in reason


def _to_failure(report):
    """Turn a skipped report of a missing reference library into a failure."""
    if _required and report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2]
        if _is_reference_skip(reason):
            report.outcome = "failed"
            report.longrepr = f"{reason} -- required by {REQUIRE_ENV}=1 / --require-references"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _to_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _required and report.skipped and isinstance(report.longrepr, tuple):
        _to_failure(report)


def pytest_report_header(config):
    return f"fnnet {fnnet.__version__}; host memory kept: {fnnet.HOST_MEMORY_KEPT}"


def pytest_terminal_summary(terminalreporter):
    """One line: how many tests skipped for a missing reference library, and the fix."""
    libs, tests, modules = set(), 0, 0
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and _is_reference_skip(longrepr[2]):
            if getattr(report, "when", None) == "collect":
                modules += 1                  # a module-level importorskip
            else:
                tests += 1
            reason = longrepr[2]
            if _TAG in reason:
                libs.add(reason.split(_TAG, 1)[1].split()[0].strip("'"))
    if tests or modules:
        what = " and ".join(part for part in (
            f"{tests} reference test{'s' * (tests != 1)}" if tests else "",
            f"{modules} reference test module{'s' * (modules != 1)}" if modules else "") if part)
        names = ", ".join(sorted(libs)) or "a reference library"
        terminalreporter.write_line(f"{what} skipped ({names} not installed): to run them, {_HOW}",
                                    yellow=True, bold=True)


@pytest.fixture
def x64():
    """Run the test with 64-bit floats enabled (for gradient checks)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    """A NumPy generator for test data (independent of the code under test)."""
    return np.random.default_rng(0)
