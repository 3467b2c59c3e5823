"""The command line: ``fnnet list``, ``fnnet run NAME``, ``fnnet bench``.

``fnnet run NAME [--seed N] [--set field=value ...] [--out DIR]`` loads
``experiments/NAME.py`` (from ``--experiments DIR``, the current directory's
``experiments/``, or the one beside the installed package), builds its ``Config``
with the overrides, calls ``run(config)`` and writes ``DIR/NAME/<run-id>/``:
``config.json``, ``metrics.jsonl`` (the result's ``history``), ``result.json``,
``versions.json`` (library versions, backend, git revision) and PNG plots (the
experiment's own ``plot(result, out_dir)`` if it has one, and the history curves).

Imports: everything (experiments are found by name at run time, never imported
statically).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

__all__ = ["main", "find_experiments", "load_experiment", "make_config", "run_experiment"]


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


def _convert(text: str, default, field: str):
    """Parse an override with the type of the field's default value."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, (int, float, str)):
            return type(default)(text)
        value = json.loads(text)  # tuples, lists, None
        return tuple(value) if isinstance(default, tuple) else value
    except (ValueError, json.JSONDecodeError):
        raise SystemExit(f"fnnet: cannot read --set {field}={text} as a {type(default).__name__}") from None


def make_config(module: ModuleType, seed: int | None = None, overrides: list[str] = ()):
    """The experiment's default ``Config`` with ``seed`` and ``field=value`` overrides."""
    config = module.Config()
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        field, sep, text = item.partition("=")
        if not sep or field not in fields:
            raise SystemExit(f"fnnet: --set expects field=value with a field of "
                             f"{sorted(fields)}, got {item!r}")
        changes[field] = _convert(text, getattr(config, field), field)
    if seed is not None:
        if "seed" not in fields:
            raise SystemExit("fnnet: this experiment's Config has no seed")
        changes["seed"] = seed
    return dataclasses.replace(config, **changes)


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
    """One panel per numeric series of ``history`` (losses and metrics) against the epoch/step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not history:
        return None
    xkey = next((k for k in ("epoch", "step") if k in history[0]), None)
    keys = [k for k in history[0] if k != xkey and isinstance(history[0][k], (int, float))]
    if not keys:
        return None
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if k not in losses]
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    xs = [h.get(xkey, i + 1) for i, h in enumerate(history)]
    for ax, series in zip(axes[0], panels):
        for k in series:
            ax.plot(xs, [h.get(k, float("nan")) for h in history], label=k)
        ax.set_xlabel(xkey or "index")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_experiment(name: str, *, seed: int | None = None, overrides: list[str] = (),
                   out: str = "runs", directory: str | None = None) -> tuple[dict, Path]:
    """Run one experiment and write its run directory; returns (result, run_dir)."""
    module = load_experiment(name, directory)
    config = make_config(module, seed, overrides)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) / name / f"{stamp}-seed{getattr(config, 'seed', 'na')}"
    suffix = 1
    while run_dir.exists():
        run_dir = run_dir.with_name(f"{run_dir.name}-{suffix}")
        suffix += 1
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    (run_dir / "versions.json").write_text(json.dumps(_versions(), indent=2) + "\n")
    start = time.perf_counter()
    result = module.run(config)
    elapsed = time.perf_counter() - start
    history = result.get("history", [])
    with open(run_dir / "metrics.jsonl", "w") as f:
        for entry in history:
            f.write(json.dumps(entry) + "\n")
    summary = {k: v for k, v in result.items() if k != "history"}
    summary["wall_time_s"] = round(elapsed, 3)
    (run_dir / "result.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plots = []
    if hasattr(module, "plot"):
        plots += [str(p) for p in module.plot(result, run_dir) or []]
    curve = plot_history(history, run_dir / "curves.png", name)
    if curve is not None:
        plots.append(str(curve))
    summary["plots"] = plots
    return summary, run_dir


def _print_summary(name: str, summary: dict, run_dir: Path) -> None:
    print(f"{name}: finished in {summary['wall_time_s']:.1f} s")
    for k, v in summary.items():
        if k in ("plots", "wall_time_s"):
            continue
        if isinstance(v, float):
            print(f"  {k:<28} {v:.4f}")
        elif isinstance(v, (int, str, bool)) or v is None:
            print(f"  {k:<28} {v}")
    print(f"  results: {run_dir}")
    for p in summary["plots"]:
        print(f"  plot:    {p}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fnnet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list the experiments")
    p_list.add_argument("--experiments", help="directory of experiment files")
    p_run = sub.add_parser("run", help="run an experiment and write runs/NAME/<run-id>/")
    p_run.add_argument("name")
    p_run.add_argument("--seed", type=int)
    p_run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a Config field (repeatable)")
    p_run.add_argument("--out", default="runs", help="output root (default: runs)")
    p_run.add_argument("--experiments", help="directory of experiment files")
    p_bench = sub.add_parser("bench", help="run the benchmarks (benchmarks/bench_*.py)")
    p_bench.add_argument("names", nargs="*", help="benchmark names (default: all)")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name, path in find_experiments(args.experiments).items():
            module = load_experiment(name, args.experiments)
            first = (module.__doc__ or "").strip().split("\n")[0]
            print(f"{name:<24} {first}")
        return 0
    if args.command == "run":
        summary, run_dir = run_experiment(args.name, seed=args.seed, overrides=args.set,
                                          out=args.out, directory=args.experiments)
        _print_summary(args.name, summary, run_dir)
        return 0
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
