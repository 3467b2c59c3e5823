"""Run ``fnnet run NAME ...`` in a subprocess (so ``--devices`` can simulate CPU devices
before JAX starts) and return the run folder and its result."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(tmp_path, name: str, *args: str, timeout: int = 900):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-m", "fnnet.cli", "run", name, *args, "--out", str(tmp_path),
                           "--experiments", str(ROOT / "experiments")],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (Path(tmp_path) / name).iterdir()
    return run_dir, json.loads((run_dir / "result.json").read_text())
