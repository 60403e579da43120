"""Both CIFAR-10 method benchmarks in their larger configuration, on one GPU, in one go.

    python benchmarks/gpu_oneshot.py        # needs a CUDA device; writes benchmarks/results/gpu_oneshot.json

Runs ``benchmarks/sswp_cifar10.py --gpu`` and then ``benchmarks/cream_cifar10.py --gpu`` (their
``--help`` lists what ``--gpu`` sets), each in its own process group with a hard limit of
``--minutes`` (8) minutes. A run past its limit is killed with all its workers and reported as cut,
never as a result. Their output is shown as it comes. The JSON holds the GPU's name, each command,
its exit status, wall time, the last lines of its output and the JSON it wrote. ``--parallel`` starts
them together (where one device session has time for one command only); each wall time is then an
upper bound of its time alone. Exit status 0 only
when both runs completed with status 0 (Cream's exits 1 after writing its results when its interval
is too wide to decide its target; that is recorded as such).

The children are started with ``--allow-busy``: this script checks the load average once, at its
start (refusing a busy machine unless ``--allow-busy``), and the second benchmark would otherwise see
the load the first one left behind.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOAD = 1.5
BENCHMARKS = {"sswp": "sswp_cifar10.py", "cream": "cream_cifar10.py"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8.0, help="hard limit of each benchmark")
    parser.add_argument("--benchmarks", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--parallel", action="store_true",
                        help="start the benchmarks together (one GPU, the CPU cores shared): their wall times are then "
                             "upper bounds of what each takes alone")
    parser.add_argument("--allow-busy", action="store_true",
                        help=f"start even when the 1-minute load average is >= {BUSY_LOAD}")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "gpu_oneshot.json"))
    return parser.parse_args()


def run_benchmark(name: str, minutes: float, workdir: Path) -> dict:
    """One benchmark with ``--gpu`` in its own process group, killed (with its workers) at the limit."""
    result_file = workdir / f"{name}.json"
    command = [sys.executable, str(ROOT / "benchmarks" / BENCHMARKS[name]), "--gpu", "--allow-busy",
               "--output", str(result_file)]
    print(f"== {name}: {' '.join(command)}  (limit {minutes:g} min)", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=60)
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)

    def echo() -> None:
        for line in process.stdout:
            print(f"[{name}] {line}", end="", flush=True)
            tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        returncode = process.wait(timeout=minutes * 60)
        status = "complete" if returncode == 0 else f"exit status {returncode}"
    except subprocess.TimeoutExpired:
        kill_group(process)
        returncode = process.wait()
        status = f"cut: killed at the {minutes:g}-minute limit"
    except BaseException:  # e.g. Ctrl-C: the child runs in its own session and would not see it
        kill_group(process)
        raise
    reader.join(timeout=10)
    wall = time.perf_counter() - began
    result = json.loads(result_file.read_text()) if result_file.is_file() and not status.startswith("cut") else None
    print(f"== {name}: {status} after {wall:.0f}s", flush=True)
    return {"command": command, "status": status, "returncode": returncode, "wall_seconds": round(wall, 1),
            "output_tail": list(tail), "result": result}


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the benchmark and every worker it started (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_oneshot: no CUDA device is visible to torch (torch.cuda.is_available() is False); "
                         "this script runs the GPU configurations only. On a CPU run the benchmarks themselves: "
                         "python benchmarks/sswp_cifar10.py, python benchmarks/cream_cifar10.py")
    load = os.getloadavg()
    if load[0] >= BUSY_LOAD and not args.allow_busy:
        raise SystemExit(f"gpu_oneshot: 1-minute load average {load[0]:.2f} >= {BUSY_LOAD}; wait, or pass --allow-busy")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_oneshot_") as tmp:
        if args.parallel:
            with ThreadPoolExecutor(len(args.benchmarks)) as pool:
                futures = {name: pool.submit(run_benchmark, name, args.minutes, Path(tmp)) for name in args.benchmarks}
                runs = {name: future.result() for name, future in futures.items()}
        else:
            runs = {name: run_benchmark(name, args.minutes, Path(tmp)) for name in args.benchmarks}
    payload = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
               "cpu_count": os.cpu_count(), "load_average_start": list(load), "allow_busy": args.allow_busy,
               "minutes_limit": args.minutes, "parallel": args.parallel, "benchmarks": runs, "wall_seconds": round(time.perf_counter() - began, 1)}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=output.parent, prefix=f".{output.name}.", suffix=".tmp", delete=False) as f:
        f.write(json.dumps(payload, indent=2) + "\n")
    os.replace(f.name, output)
    print(f"wrote {output}: " + ", ".join(f"{name} {run['status']}" for name, run in runs.items()))
    return 0 if all(run["returncode"] == 0 for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
