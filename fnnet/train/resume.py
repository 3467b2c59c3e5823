"""What :func:`fnnet.train.fit` carries between evaluation periods, and its checkpoint:
the progress record, the run description a resume must match, writing it as one tree
and reading it back with every difference named.

Imports: jax, numpy, fnnet.train.checkpoint.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from fnnet.train.checkpoint import (CheckpointError, _entries, _read_arrays, _subtree_entries,
                                    _unflatten_like)

__all__: list[str] = []


@dataclasses.dataclass
class Progress:
    """Everything the loop carries from one epoch to the next (and to a checkpoint)."""
    params: Any
    state: Any
    opt_state: Any
    epoch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    best_vars: tuple | None = None
    waited: int = 0
    stopped: bool = False
    warned: bool = False


def _spec(a) -> str:
    """``float32[100, 8]`` for an array; the same per array for a pytree of them."""
    if isinstance(a, (np.ndarray, jax.Array)):
        return f"{np.dtype(a.dtype).name}{list(np.shape(a))}"
    return str(jax.tree.map(_spec, a))


def key_data(key) -> np.ndarray:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def run_settings(run: Progress, key, x, y, dev, batch_size, shuffle, drop_last, metrics, penalty,
              early_stopping) -> dict[str, str]:
    """What a resumed run must share with the one that wrote the checkpoint, as text."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return {
        "train_data": f"x {_spec(x)}, y {_spec(y)}",
        "dev_data": "none" if dev is None else f"x {_spec(dev[0])}, y {_spec(dev[1])}",
        "batch_size": str(batch_size), "shuffle": str(bool(shuffle)), "drop_last": str(bool(drop_last)),
        "metrics": str(sorted(metrics or {})),
        "penalty": "none" if penalty is None else "a penalty",
        "early_stopping": repr(early_stopping),
        "key_impl": str(jax.random.key_impl(key)) if typed else f"raw key data {_spec(key)}",
        "params_tree": str(jax.tree.structure(run.params)),
        "state_tree": str(jax.tree.structure(run.state)),
        "opt_state_tree": str(jax.tree.structure(run.opt_state)),
    }


def progress_tree(run: Progress, key, settings: dict, early_stopping) -> dict:
    names = [k for k in run.history[0] if k != "epoch"] if run.history else []
    tree = {
        "params": run.params, "state": run.state, "opt_state": run.opt_state,
        "key": key_data(key),
        "epoch": np.int64(run.epoch),
        "step": np.int64(run.step),
        "history": {"epoch": np.asarray([h["epoch"] for h in run.history], np.int64),
                    "names": np.asarray(names, np.str_).reshape(len(names)),
                    "values": np.asarray([[h[k] for k in names] for h in run.history],
                                         np.float64).reshape(len(run.history), len(names))},
        "early_stopping": {"best_value": np.float64(np.nan if run.best is None else run.best),
                           "best_epoch": np.int64(run.best_epoch or 0),
                           "waited": np.int64(run.waited), "stopped": np.bool_(run.stopped)},
        "settings": {k: np.asarray(v, np.str_) for k, v in settings.items()},
    }
    if early_stopping is not None and early_stopping.restore_best and run.best_vars is not None:
        tree["best"] = {"params": run.best_vars[0], "state": run.best_vars[1]}
    return tree


def _excerpt(a: str, b: str, width: int = 50) -> tuple[str, str]:
    """``a`` and ``b`` cut to ``width`` characters either side of their first difference."""
    i = next((j for j, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
    cut = lambda s: ("..." if i > width else "") + s[max(0, i - width):i + width] + ("..." if len(s) > i + width else "")
    return cut(a), cut(b)


def load_progress(file: str, fresh: Progress, key, settings: dict, total: int, budget: str,
                   early_stopping) -> Progress:
    """Read and check a checkpoint written by :func:`fit`; raise naming any difference."""
    entries = _entries(_read_arrays(file, "fit"), file, "fit")
    by_path = {p: a for p, _, a in entries}

    def entry(path):
        if path not in by_path:
            raise CheckpointError(f"fit: checkpoint {file} lacks {path}: it was not written by fit "
                                  "(or by an older version of it)")
        return by_path[path]

    def check(name):
        saved, now = str(entry(f"['settings']['{name}']")), settings[name]
        if saved != now:
            if name.endswith("_tree"):
                saved, now = _excerpt(saved, now)
            raise ValueError(f"fit: checkpoint {file} was written with {name} {saved} but fit was given {now}")

    for name in settings:
        if not name.endswith("_tree"):
            check(name)
    saved_key, given_key = entry("['key']"), key_data(key)
    if saved_key.shape != given_key.shape or not np.array_equal(saved_key, given_key):
        raise ValueError(f"fit: checkpoint {file} was written with key data {saved_key.tolist()} "
                         f"but fit was given {given_key.tolist()}")
    epoch, step = int(entry("['epoch']")), int(entry("['step']"))
    if step > total:
        raise ValueError(f"fit: checkpoint {file} holds epoch {epoch} (step {step}) but fit was given "
                         f"{budget} ({total} steps)")

    def restore(prefix, like):
        name = prefix.replace("']['", " ").strip("[]'")  # "['best']['params']" -> "best params"
        return _unflatten_like(_subtree_entries(entries, prefix), like, file=file, who="fit",
                               given="fit was given", other="fit's arguments", name=name)

    run = Progress(restore("['params']", fresh.params), restore("['state']", fresh.state),
                    restore("['opt_state']", fresh.opt_state), epoch, step)
    for name in ("params_tree", "state_tree", "opt_state_tree"):  # same paths, other node types
        check(name)
    names = [str(n) for n in entry("['history']['names']").reshape(-1)]
    values, numbers = entry("['history']['values']"), entry("['history']['epoch']")
    if values.shape != (len(numbers), len(names)):
        raise CheckpointError(f"fit: checkpoint {file} holds a history of shape {list(values.shape)} "
                              f"for {len(numbers)} periods and {len(names)} entries")
    run.history = [{"epoch": int(e), **{k: int(v) if k == "step" else float(v) for k, v in zip(names, row)}}
                   for e, row in zip(numbers, values)]
    best_epoch = int(entry("['early_stopping']['best_epoch']"))
    if best_epoch:
        run.best, run.best_epoch = float(entry("['early_stopping']['best_value']")), best_epoch
    run.waited = int(entry("['early_stopping']['waited']"))
    run.stopped = bool(entry("['early_stopping']['stopped']"))
    if early_stopping is not None and early_stopping.restore_best and best_epoch:
        run.best_vars = (restore("['best']['params']", fresh.params), restore("['best']['state']", fresh.state))
    return run
