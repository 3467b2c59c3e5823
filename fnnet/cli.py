"""The command line: ``fnnet list``, ``fnnet run NAME``, ``fnnet bench``.

``fnnet run NAME [--seed N] [--set field=value ...] [--out DIR]`` loads
``experiments/NAME.py`` (from ``--experiments DIR``, the current directory's
``experiments/``, or the one beside the installed package), builds its ``Config``
with the overrides, calls ``run(config)`` and writes ``DIR/NAME/<run-id>/``:
``status.json``, ``config.json``, ``metrics.jsonl`` (the result's ``history``),
``result.json``, ``versions.json`` (library versions, backend, git revision), PNG
plots (the experiment's own ``plot(result, out_dir)`` if it has one, and the history
curves) and, when something failed, ``error.txt`` (the traceback).

``--devices N`` sets the ``devices`` field of an experiment that has one (the same as
``--set devices=N``); before ``run`` the command provides that many devices, simulated
CPU devices when JAX runs on the CPU (``fnnet run data_parallel --devices 8``).

Several processes (one per host, or several on one machine) run one experiment as one
program on JAX's distributed runtime: ``fnnet run NAME --processes P`` launches ``P``
processes on this machine (``--devices N``: ``N`` devices in all, ``N / P`` simulated
per process on a CPU); on a cluster, every host runs ``fnnet run NAME --distributed``
with ``FNNET_COORDINATOR=host0:port``, ``FNNET_NUM_PROCESSES`` and ``FNNET_PROCESS_ID``
set (or none of them where JAX detects the cluster: TPU pod slices, Slurm, Open MPI).
Process 0 writes the run folder (its ``status.json`` records ``processes``).

``fnnet run NAME --help`` prints the experiment's summary, its typical CPU time and
every ``Config`` field with its type, default and one-line doc. The doc of a field is
the ``#`` comment that ends its line in the ``Config`` class (the comments of all the
lines of a field written over several lines, joined)::

    hidden: tuple[int, ...] = (512, 512)   # widths of the hidden layers

Each ``Config`` validates its values in ``__post_init__`` (``fnnet.train.check_config``
and ``require``). docs/experiments.md describes the convention, ``--set`` and the run
folder for users.

``--set FIELD=VALUE`` reads VALUE by the field's annotation (or, without one, by the
type of its default): ``true``/``false`` (also ``1``/``0``, ``yes``/``no``) for a bool;
``none`` or ``null`` for an optional field left unset; a tuple either as comma-separated
values (``--set hidden=64,32``; a single value ``--set hidden=64`` is the 1-tuple
``(64,)``) or as JSON (``--set hidden=[64,32]``, ``--set hidden=[]``; nested tuples
such as ``(("adam", 0.001),)`` only as JSON, ``[["adam", 0.001]]``), each element read
by the element type of the annotation (``tuple[int, ...]``) or of the default's
elements. A value that cannot be read, a field given twice (``--seed`` counts as
``--set seed``) or a value the ``Config`` rejects ends the command with one line on
stderr and exit code 1, before any compute and without a run folder.

The run folder's ``status.json`` says ``"running"`` from the start, then
``"completed"`` once ``result.json`` is written or ``"failed"`` (with the error, and
its traceback in ``error.txt``) if ``run()`` or writing its result raised; the
exception is then raised again (exit code 1). A plot that fails after the result is
saved leaves the run ``"completed"`` with the failure under ``"errors"`` (traceback in
``error.txt``), and the command exits 1. A ``"running"`` folder whose process is gone
was killed. Results are written as strict JSON: JAX and NumPy arrays become (nested)
lists, their scalars Python numbers, tuples lists, non-string keys strings, and the
non-finite floats the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (``float(s)`` reads
them back); any other object is written as its ``str``.

``fnnet list`` reads each experiment file's docstring and its ``CPU_SECONDS``
constant (the typical time of a default run on a 2-core CPU; ``None``: not measured)
without importing it.

Imports: everything (experiments are found by name at run time, never imported
statically).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import platform
import subprocess
import sys
import textwrap
import time
import tokenize
import traceback
from pathlib import Path
from types import ModuleType

__all__ = ["main", "find_experiments", "load_experiment", "make_config", "run_experiment", "json_safe",
           "provide_devices", "launch_processes", "config_docs", "describe_experiment"]


def _search_dirs(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    return [Path.cwd() / "experiments", Path(__file__).resolve().parents[1] / "experiments"]


def find_experiments(directory: str | None = None) -> dict[str, Path]:
    """Names of the available experiments and their files (first directory wins)."""
    found: dict[str, Path] = {}
    for d in _search_dirs(directory):
        if d.is_dir():
            for f in sorted(d.glob("*.py")):
                if not f.name.startswith("_"):
                    found.setdefault(f.stem, f)
    return found


def load_experiment(name: str, directory: str | None = None) -> ModuleType:
    """Import ``experiments/<name>.py`` and check it has ``Config`` and ``run``."""
    available = find_experiments(directory)
    if name not in available:
        raise SystemExit(f"fnnet: no experiment {name!r}; available: {', '.join(available) or 'none'}")
    module_name = f"fnnet_experiment_{name}"
    spec = importlib.util.spec_from_file_location(module_name, available[name])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve string annotations through it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    for attr in ("Config", "run"):
        if not hasattr(module, attr):
            raise SystemExit(f"fnnet: {available[name]} has no {attr}")
    return module


# ----------------------------------------------------------------------------- describing

def _static_info(path: Path) -> dict:
    """The docstring and ``CPU_SECONDS`` of an experiment file, read without importing it."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as e:
        return {"doc": f"(cannot be read: {type(e).__name__}: {e})", "cpu_seconds": None}
    seconds = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CPU_SECONDS"
                                                for t in node.targets):
            try:
                seconds = ast.literal_eval(node.value)
            except ValueError:
                seconds = None
    return {"doc": ast.get_docstring(tree) or "", "cpu_seconds": seconds}


def _summary_line(name: str, doc: str, width: int = 100) -> str:
    """The docstring's first paragraph on one line, without a leading ``NAME:``, cut to ``width``."""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    if first.startswith(f"{name}:"):
        first = first[len(name) + 1:].strip()
    return first if len(first) <= width else first[:width - 3].rsplit(" ", 1)[0] + " ..."


def _cpu_time(seconds) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "not measured"
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.1f} min"


def config_docs(module: ModuleType) -> dict[str, str]:
    """``{field: doc}`` from the trailing ``#`` comments of the fields of the module's ``Config``."""
    path = getattr(module, "__file__", None)
    if not path:
        return {}
    source = Path(path).read_text()
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if not text.startswith(("noqa", "type:", "pragma")):
                comments[tok.start[0]] = text
    docs = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == "Config":
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    lines = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
                    docs[stmt.target.id] = " ".join(comments[i] for i in lines if i in comments)
    return docs


def describe_experiment(name: str, module: ModuleType) -> str:
    """What ``fnnet run NAME --help`` prints below the options: the experiment's summary,
    its typical CPU time, and every ``Config`` field with its type, default and doc."""
    info = _static_info(Path(module.__file__))
    docs = config_docs(module)
    defaults = module.Config()
    lines = [f"{name}: {_summary_line(name, info['doc'])}",
             f"typical CPU time of the default run: {_cpu_time(info['cpu_seconds'])} "
             f"(on 2 cores; the file's docstring and docs/experiments.md give the results)",
             "",
             "Config fields (--set FIELD=VALUE; tuples as 64,32 or [64,32]; none for an unset optional):"]
    for f in dataclasses.fields(defaults):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        default = repr(getattr(defaults, f.name))
        lines += textwrap.wrap(f"{f.name}: {kind} = {default}", 96, initial_indent="  ",
                               subsequent_indent="        ", break_on_hyphens=False)
        doc = docs.get(f.name) or "(no doc)"
        lines += textwrap.wrap(doc, 92, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- --set

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class _Unreadable(ValueError):
    pass


def _element_hint(hint, default):
    """The element hints of a tuple field: (hint for every element) or a tuple of per-position hints."""
    import typing
    args = typing.get_args(hint)
    if args:
        return args[0] if len(args) == 2 and args[1] is Ellipsis else tuple(args)
    if isinstance(default, tuple) and default:
        kinds = {type(v) for v in default}
        if len(kinds) == 1:
            kind = kinds.pop()
            return None if kind is tuple else kind
        if kinds <= {int, float}:
            return float
    return None


def _guess(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _is_tuple_hint(hint) -> bool:
    import typing
    return hint is tuple or typing.get_origin(hint) is tuple


def _optional_inner(hint):
    """(inner hint, True) for ``Optional[X]`` / ``X | None``, else (hint, False)."""
    import types
    import typing
    origin = typing.get_origin(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
        return None, True
    return hint, False


def _from_text(text: str, hint, default):
    """A scalar or tuple read from the text of an override."""
    hint, optional = _optional_inner(hint)
    if optional and text.strip().lower() in ("none", "null"):
        return None
    if hint is None:
        hint = type(default) if default is not None else None
    if hint is None:
        return json.loads(text) if text.strip()[:1] in "[{" else _guess(text)
    if hint is bool:
        if text.strip().lower() not in _TRUE + _FALSE:
            raise _Unreadable(f"{text!r} is not one of true, false, 1, 0, yes, no")
        return text.strip().lower() in _TRUE
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise _Unreadable(f"{text!r} is not an int") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise _Unreadable(f"{text!r} is not a number") from None
    if hint is str:
        return text
    if _is_tuple_hint(hint):
        elements = _element_hint(hint, default)
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as e:
                raise _Unreadable(f"{stripped!r} is not valid JSON ({e.msg})") from None
            return _from_json(value, hint, default)
        if stripped in ("", "()"):
            return ()
        nested = (_is_tuple_hint(elements) if not isinstance(elements, tuple) else any(map(_is_tuple_hint, elements))
                  ) or (elements is None and isinstance(default, tuple) and any(isinstance(v, tuple) for v in default))
        if nested:
            raise _Unreadable('its elements are tuples: give it as JSON, e.g. [["adam", 0.001], ["sgd", 0.1]]')
        parts = [p.strip() for p in stripped.split(",")]
        if isinstance(elements, tuple):
            if len(parts) != len(elements):
                raise _Unreadable(f"expected {len(elements)} comma-separated values, got {len(parts)}")
            return tuple(_from_text(p, e, None) for p, e in zip(parts, elements))
        return tuple(_guess(p) if elements is None else _from_text(p, elements, None) for p in parts)
    return json.loads(text)


def _from_json(value, hint, default=None):
    """A JSON value as the annotated type (lists become tuples)."""
    hint, optional = _optional_inner(hint)
    if value is None:
        if optional or hint is None:
            return None
        raise _Unreadable("null is not allowed here")
    if hint is None:
        return tuple(_from_json(v, None) for v in value) if isinstance(value, list) else value
    if hint is bool:
        if not isinstance(value, bool):
            raise _Unreadable(f"{value!r} is not true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Unreadable(f"{value!r} is not an int")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Unreadable(f"{value!r} is not a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Unreadable(f"{value!r} is not a string")
        return value
    if _is_tuple_hint(hint):
        if not isinstance(value, list):
            raise _Unreadable(f"{value!r} is not a JSON list")
        elements = _element_hint(hint, default)
        if isinstance(elements, tuple):
            if len(value) != len(elements):
                raise _Unreadable(f"expected {len(elements)} values, got {len(value)}")
            return tuple(_from_json(v, e) for v, e in zip(value, elements))
        if elements is None and isinstance(default, tuple) and default and isinstance(default[0], tuple):
            return tuple(_from_json(v, tuple, default[0]) for v in value)
        return tuple(_from_json(v, elements) for v in value)
    return value


def make_config(module: ModuleType, seed: int | None = None, overrides: list[str] = (),
                devices: int | None = None):
    """The experiment's default ``Config`` with ``seed``, ``devices`` and ``field=value`` overrides.

    Raises ``SystemExit`` with a one-line message for an unknown field, a value that
    cannot be read, a field given twice, or a value the ``Config`` rejects.
    """
    from fnnet.train.config import field_types, type_name

    name = getattr(module, "__name__", "").removeprefix("fnnet_experiment_")
    try:
        config = module.Config()
    except (TypeError, ValueError) as e:
        raise SystemExit(f"fnnet: {name}: the default Config is invalid: {e}") from None
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = field_types(type(config))
    changes = {}
    for item in overrides:
        field, sep, text = item.partition("=")
        field = field.strip()
        if not sep or field not in fields:
            raise SystemExit(f"fnnet: --set expects field=value with a field of "
                             f"{sorted(fields)}, got {item!r}")
        if field in changes:
            raise SystemExit(f"fnnet: --set {field} is given twice")
        hint = hints[field]
        try:
            changes[field] = _from_text(text, hint, getattr(config, field))
        except (_Unreadable, json.JSONDecodeError) as e:
            kind = type_name(hint, fields[field].type) if hint is not None else type(getattr(config, field)).__name__
            raise SystemExit(f"fnnet: cannot read --set {field}={text} as a {kind}: {e}") from None
    for option, value in (("seed", seed), ("devices", devices)):
        if value is None:
            continue
        if option not in fields:
            raise SystemExit(f"fnnet: {name}: its Config has no {option} field"
                             + (" (it runs on one device)" if option == "devices" else ""))
        if option in changes:
            raise SystemExit(f"fnnet: the {option} is given twice (--{option} {value} and --set "
                             f"{option}={changes[option]}); give one")
        changes[option] = value
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"fnnet: {name}: {e}") from None


# ----------------------------------------------------------------------------- results as JSON

def json_safe(obj, *, nonfinite_as_str: bool = True):
    """``obj`` as plain JSON data: arrays to lists, scalars to Python numbers, tuples to lists.

    JAX and NumPy arrays become nested lists (a 0-d array its scalar), NumPy and JAX
    scalars Python ``int``/``float``/``bool``, tuples and sets lists, dict keys their
    ``str``, dataclasses dicts, and anything else its ``str`` (or ``repr``). With ``nonfinite_as_str`` the floats
    NaN, +inf and -inf become the strings ``"nan"``, ``"inf"`` and ``"-inf"``, so the
    output is strict JSON (``json.dumps(..., allow_nan=False)`` accepts it).
    """
    def convert(x):
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            if nonfinite_as_str and not math.isfinite(x):
                return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
            return float(x)
        if isinstance(x, dict):
            return {k if isinstance(k, str) else str(k if isinstance(k, (tuple, list)) else convert(k)): convert(v)
                    for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [convert(v) for v in x]
        if isinstance(x, (set, frozenset)):
            return [convert(v) for v in sorted(x, key=repr)]
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return convert(dataclasses.asdict(x))
        if isinstance(x, Path):
            return str(x)
        if hasattr(x, "__array__") or type(x).__module__ == "numpy":
            import numpy as np
            try:
                a = np.asarray(x)
            except Exception:  # e.g. a JAX PRNG key array
                return str(x)
            if a.dtype.kind in "biuf":
                pass
            elif a.dtype.kind == "V" or a.dtype.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
                a = a.astype(np.float32)
            elif a.dtype.kind == "c":
                return convert({"real": a.real, "imag": a.imag})
            else:
                return convert(a.tolist()) if a.dtype.kind in "OSU" else str(x)
            return convert(a.item() if a.ndim == 0 else a.tolist())
        if hasattr(x, "item") and callable(x.item):
            try:
                return convert(x.item())
            except Exception:
                pass
        for text in (str, repr):
            try:
                return text(x)
            except Exception:
                pass
        return f"<{type(x).__name__} object>"

    return convert(obj)


def _dumps(obj, indent=None) -> str:
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (no half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _versions() -> dict:
    import jax
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}
    for pkg in ("fnnet", "jax", "jaxlib", "numpy", "optax", "chex"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        root = Path(__file__).resolve().parents[1]
        out["git_revision"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                             text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_revision"] = None
    return out


def plot_history(history: list[dict], path: Path, title: str) -> Path | None:
    """One panel per kind of numeric series of ``history`` (losses, then metrics) against
    the epoch/step; entries labelled by a string field (``{"run": "plain lr=0.1", ...}``,
    ``{"cell": "gru", ...}``) give one line per label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not history or not isinstance(history[0], dict):
        return None
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    xkey = next((k for k in ("epoch", "step", "iteration") if k in history[0]), None)
    keys = [k for k in history[0] if k != xkey and number(history[0][k])]
    if not keys:
        return None
    tags = [k for k in history[0] if isinstance(history[0][k], str)]
    groups: dict[str, list[dict]] = {}
    for h in history:
        groups.setdefault(" ".join(str(h.get(t)) for t in tags), []).append(h)
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if k not in losses]
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, series in zip(axes[0], panels):
        for label, entries in groups.items():
            xs = [h.get(xkey, i + 1) for i, h in enumerate(entries)]
            for k in series:
                ax.plot(xs, [h.get(k) if number(h.get(k)) else float("nan") for h in entries],
                        label=f"{label} {k}".strip())
        ax.set_xlabel(xkey or "index")
        ax.legend(fontsize=7 if len(groups) * len(series) > 6 else 10)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- running

def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def provide_devices(count: int, distributed: bool = False) -> None:
    """Make ``count`` devices available before JAX starts its backend: on the CPU
    backend, ``count`` simulated CPU devices (``jax_num_cpu_devices``); accelerators are
    used as they are. With ``distributed``, first join the processes of a multi-process
    run (:func:`fnnet.parallel.initialize` from ``FNNET_COORDINATOR``,
    ``FNNET_NUM_PROCESSES``, ``FNNET_PROCESS_ID`` or JAX's cluster detection): ``count``
    is then the devices of all processes, each simulating its share on a CPU. Raises
    ``SystemExit`` when fewer than ``count`` devices exist."""
    import jax

    processes = 1
    if distributed:
        try:
            processes = max(1, int(os.environ.get("FNNET_NUM_PROCESSES") or 1))
        except ValueError:
            raise SystemExit(f"fnnet: expected an integer in FNNET_NUM_PROCESSES, got "
                             f"{os.environ['FNNET_NUM_PROCESSES']!r}") from None
    local = -(-count // processes)
    if local > 1:
        try:
            jax.config.update("jax_num_cpu_devices", max(local, jax.config.jax_num_cpu_devices))
        except RuntimeError:  # the backend already started: use the devices it has
            pass
    if distributed:
        from fnnet.parallel import initialize
        try:
            initialize()
        except ValueError as e:
            raise SystemExit(f"fnnet: {e}") from None
    if jax.device_count() < count:
        raise SystemExit(f"fnnet: expected {count} devices, found {jax.device_count()} "
                         f"({jax.default_backend()}); JAX had started before they could be simulated")


def run_experiment(name: str, *, seed: int | None = None, overrides: list[str] = (),
                   out: str = "runs", directory: str | None = None, verbose: bool = False,
                   devices: int | None = None, distributed: bool = False) -> tuple[dict, Path | None]:
    """Run one experiment and write its run directory; returns (summary, run_dir).

    A ``Config`` with a ``devices`` field gets that many devices (:func:`provide_devices`)
    before ``run``; ``devices`` here sets the field, like ``--devices N``. With
    ``distributed`` this process joins a multi-process run first (``--distributed``):
    every process runs the experiment, process 0 writes the run directory, and the
    others return ``({"process_index": i, "wall_time_s": t}, None)``.

    The summary is the JSON-safe result without its history, with ``wall_time_s``,
    ``plots`` (paths) and ``errors`` (failures after the result was saved). An
    exception of ``run()`` is raised again after the folder records it.
    """
    module = load_experiment(name, directory)
    config = make_config(module, seed, overrides, devices)
    if hasattr(config, "devices") or distributed:
        provide_devices(getattr(config, "devices", 1), distributed)
    if distributed:
        import jax
        if jax.process_index() != 0:  # the same program; process 0 keeps the record
            start = time.perf_counter()
            module.run(config)
            return {"process_index": jax.process_index(),
                    "wall_time_s": round(time.perf_counter() - start, 3)}, None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) / name / f"{stamp}-seed{getattr(config, 'seed', 'na')}"
    suffix = 1
    while run_dir.exists():
        run_dir = run_dir.with_name(f"{run_dir.name}-{suffix}")
        suffix += 1
    run_dir.mkdir(parents=True)
    status = {"experiment": name, "status": "running", "started": _now(), "pid": os.getpid()}
    if distributed:
        import jax
        status["processes"] = jax.process_count()
    write_status = lambda: _write_text(run_dir / "status.json", _dumps(status, 2) + "\n")  # noqa: E731
    write_status()
    _write_text(run_dir / "config.json", _dumps(dataclasses.asdict(config), 2) + "\n")
    if verbose:
        seconds = _static_info(Path(module.__file__))["cpu_seconds"]
        print(f"{name}: running (typical CPU time {_cpu_time(seconds)}); results in {run_dir}", flush=True)
    try:
        versions = _versions()
    except Exception as e:  # never lose a run for the version record
        versions = {"error": f"{type(e).__name__}: {e}"}
    _write_text(run_dir / "versions.json", _dumps(versions, 2) + "\n")

    def fail(stage: str, error: BaseException) -> None:
        with open(run_dir / "error.txt", "a") as f:
            f.write(f"[{stage}] " + "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        status.update(status="failed", stage=stage, error=f"{type(error).__name__}: {error}", finished=_now())
        write_status()

    start = time.perf_counter()
    try:
        result = module.run(config)
    except BaseException as e:
        status["wall_time_s"] = round(time.perf_counter() - start, 3)
        fail("run", e)
        if verbose:
            print(f"fnnet: {name} failed after {status['wall_time_s']:.1f} s: {status['error']} "
                  f"(traceback: {run_dir / 'error.txt'})", file=sys.stderr, flush=True)
        raise
    elapsed = time.perf_counter() - start
    status["wall_time_s"] = round(elapsed, 3)

    # Save what was computed first; everything after it may fail without losing it.
    try:
        if not isinstance(result, dict):
            result = {"result": result}
        numbers = json_safe(result, nonfinite_as_str=False)  # Python numbers (NaN kept) for the curves
        history = numbers.get("history", [])
        summary = {k: v for k, v in numbers.items() if k != "history" or not isinstance(v, list)}
        summary["wall_time_s"] = round(elapsed, 3)
        _write_text(run_dir / "result.json", _dumps(summary, 2) + "\n")
        lines = history if isinstance(history, list) else []
        _write_text(run_dir / "metrics.jsonl", "".join(_dumps(entry) + "\n" for entry in lines))
    except BaseException as e:
        try:
            (run_dir / "result.repr.txt").write_text(repr(result) + "\n")
        except Exception:
            pass
        fail("write", e)
        raise
    status.update(status="completed", finished=_now())
    write_status()

    plots, errors = [], []
    steps = []
    if hasattr(module, "plot"):
        steps.append(("plot", lambda: [str(p) for p in module.plot(result, run_dir) or []]))
    steps.append(("curves", lambda: [str(p) for p in [plot_history(lines, run_dir / "curves.png", name)]
                                     if p is not None]))
    for stage, make in steps:
        try:
            plots += make()
        except Exception as e:
            with open(run_dir / "error.txt", "a") as f:
                f.write(f"[{stage}] " + "".join(traceback.format_exception(type(e), e, e.__traceback__)))
            errors.append({"stage": stage, "error": f"{type(e).__name__}: {e}"})
    status.update(plots=plots, errors=errors)
    write_status()
    summary = {**json_safe(summary), "plots": plots, "errors": errors}
    return summary, run_dir


def _print_summary(name: str, summary: dict, run_dir: Path) -> None:
    print(f"{name}: finished in {summary['wall_time_s']:.1f} s")
    for k, v in summary.items():
        if k in ("plots", "errors", "wall_time_s"):
            continue
        if isinstance(v, float):
            print(f"  {k:<28} {v:.4f}")
        elif isinstance(v, (int, str, bool)) or v is None:
            print(f"  {k:<28} {v}")
    print(f"  results: {run_dir} (result.json holds the full result)")
    for p in summary["plots"]:
        print(f"  plot:    {p}")
    for e in summary["errors"]:
        print(f"fnnet: {name}: {e['stage']} failed after the result was saved: {e['error']} "
              f"(traceback: {run_dir / 'error.txt'})", file=sys.stderr)


def _list(directory: str | None) -> None:
    found = find_experiments(directory)
    width = max([len(n) for n in found] + [10])
    print(f"{'experiment':<{width}}  {'CPU time':<12}  summary")
    for name, path in found.items():
        info = _static_info(path)
        print(f"{name:<{width}}  {_cpu_time(info['cpu_seconds']):<12}  {_summary_line(name, info['doc'])}")


def _without_processes(argv: list[str]) -> list[str]:
    """``argv`` without its ``--processes P`` (or ``--processes=P``)."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a == "--processes":
            skip = True
        elif not a.startswith("--processes="):
            out.append(a)
    return out


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_processes(count: int, argv: list[str], timeout: float | None = None) -> int:
    """Run ``fnnet <argv> --distributed`` as ``count`` processes on this machine, joined
    through a coordinator on a free localhost port (``FNNET_COORDINATOR``,
    ``FNNET_NUM_PROCESSES``, ``FNNET_PROCESS_ID`` in each one's environment).

    Process 0 prints to this terminal and writes the run; the others' output is kept
    and shown if one fails. When a process fails the others are stopped (they would
    wait for it in their next collective). Returns the first non-zero exit code, else 0.
    """
    import tempfile
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"launch_processes: expected a process count >= 1, got {count!r}")
    port = _free_port()
    procs, logs = [], []
    for i in range(count):
        env = {**os.environ, "FNNET_COORDINATOR": f"localhost:{port}", "FNNET_NUM_PROCESSES": str(count),
               "FNNET_PROCESS_ID": str(i)}
        log = None if i == 0 else tempfile.TemporaryFile(mode="w+")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "fnnet.cli", *argv, "--distributed"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT if log else None))
    deadline = None if timeout is None else time.monotonic() + timeout
    failed = None
    try:
        while any(p.poll() is None for p in procs):
            failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
            if failed is not None or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.2)
        failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), failed)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if failed is None and all(p.returncode == 0 for p in procs):
        return 0
    failed = failed if failed is not None else next(i for i, p in enumerate(procs) if p.returncode)
    for i, log in enumerate(logs):
        if log is not None and procs[i].returncode not in (0, None):
            log.seek(0)
            print(f"--- process {i} (exit {procs[i].returncode}):\n{log.read()[-4000:]}", file=sys.stderr)
    print(f"fnnet: process {failed} of {count} failed (exit {procs[failed].returncode}); "
          "the others were stopped", file=sys.stderr)
    return procs[failed].returncode or 1


class _Once(argparse.Action):
    """Store an option's value, refusing a second one (``--seed 1 --seed 2``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} is given twice")
        setattr(namespace, self.dest, values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fnnet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list the experiments, their typical CPU time and summary")
    p_list.add_argument("--experiments", help="directory of experiment files")
    p_run = sub.add_parser("run", help="run an experiment and write runs/NAME/<run-id>/", add_help=False,
                           usage="fnnet run NAME [--seed N] [--devices N] [--processes P | --distributed] "
                                 "[--set FIELD=VALUE ...] "
                                 "[--out DIR] [--experiments DIR] [-h]")
    p_run.add_argument("name", nargs="?", help="the experiment (fnnet list shows them)")
    p_run.add_argument("-h", "--help", action="store_true",
                       help="show this help and, with NAME, the experiment's Config fields")
    p_run.add_argument("--seed", type=int, action=_Once, help="the Config's seed (the same as --set seed=N)")
    p_run.add_argument("--devices", type=int, action=_Once,
                       help="devices for an experiment with a devices field (simulated CPU devices "
                            "on a CPU; the same as --set devices=N)")
    p_run.add_argument("--processes", type=int, action=_Once, metavar="P",
                       help="launch P processes on this machine joined into one run (with --devices N: "
                            "N devices in all, N/P per process)")
    p_run.add_argument("--distributed", action="store_true",
                       help="join a multi-process run (FNNET_COORDINATOR, FNNET_NUM_PROCESSES, "
                            "FNNET_PROCESS_ID, or JAX's cluster detection); process 0 writes the run")
    p_run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a Config field (repeatable); tuples as 64,32 or [64,32]")
    p_run.add_argument("--out", default="runs", help="output root (default: runs)")
    p_run.add_argument("--experiments", help="directory of experiment files")
    p_bench = sub.add_parser("bench", help="run the benchmarks (benchmarks/bench_*.py)")
    p_bench.add_argument("names", nargs="*", help="benchmark names (default: all)")
    args = parser.parse_args(argv)

    if args.command == "list":
        _list(args.experiments)
        return 0
    if args.command == "run":
        if args.help:
            p_run.print_help()
            if args.name:
                print()
                print(describe_experiment(args.name, load_experiment(args.name, args.experiments)))
            return 0
        if not args.name:
            p_run.error("the experiment NAME is required (fnnet list shows them)")
        if args.processes is not None:
            if args.distributed:
                p_run.error("--processes launches the processes itself; --distributed joins a run "
                            "started elsewhere: give one")
            if args.processes < 1:
                p_run.error(f"expected --processes >= 1, got {args.processes}")
            if args.devices is not None and args.devices % args.processes:
                p_run.error(f"expected --devices divisible by --processes {args.processes}, "
                            f"got {args.devices}")
            return launch_processes(args.processes, _without_processes(sys.argv[1:] if argv is None else argv))
        summary, run_dir = run_experiment(args.name, seed=args.seed, overrides=args.set,
                                          out=args.out, directory=args.experiments, verbose=True,
                                          devices=args.devices, distributed=args.distributed)
        if run_dir is None:  # a process other than the first of a multi-process run
            return 0
        _print_summary(args.name, summary, run_dir)
        return 1 if summary["errors"] else 0
    root = Path.cwd() / "benchmarks"
    if not root.is_dir():
        root = Path(__file__).resolve().parents[1] / "benchmarks"
    files = sorted(root.glob("bench_*.py"))
    if args.names:
        files = [f for f in files if f.stem.removeprefix("bench_") in args.names]
    if not files:
        raise SystemExit(f"fnnet: no benchmarks found in {root}")
    status = 0
    for f in files:
        print(f"== {f.name}", flush=True)
        status |= subprocess.run([sys.executable, str(f)]).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
