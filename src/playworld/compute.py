"""How much compute a process takes: CPU threads, the precision the CPU runs natively, and the clock a
time budget counts on.

    threads = set_threads(args.threads)      # torch + OpenMP threads; None: a default that fits the load
    clock = budget_clock("cpu")              # time.process_time: CPU seconds of this process
    warning = precision_warning("bf16", "cpu")   # None where bf16 is native (AVX-512 BF16 / AMX)

Two processes that each take every core of a small machine run 10-100x slower than one (OpenMP threads
spin waiting for each other), so every command that computes takes `--threads` and, without it, picks
threads from the cores the machine has free.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Callable

import torch

from playworld.errors import PlayworldError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags (/proc/cpuinfo) for native bfloat16 arithmetic; arm64 lists `bf16`"""


def budget_clock(name: str) -> Callable[[], float]:
    """The clock a time budget counts on: 'wall' (elapsed seconds) or 'cpu' (this process's CPU seconds)."""
    if name not in ("wall", "cpu"):
        raise PlayworldError(f"unknown budget clock {name!r}", "use 'wall' or 'cpu'")
    return time.process_time if name == "cpu" else time.monotonic


# -- threads ------------------------------------------------------------------------------------------


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_load() -> float | None:
    """Runnable processes averaged over the last minute (None where the OS does not say)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def default_threads(load: float | None = None) -> int:
    """Threads for one compute-bound process: the cores not already busy (at least 1). On an idle
    2-core machine that is 2; beside one busy process, 1 (2 would oversubscribe the cores)."""
    load = machine_load() if load is None else load
    free = cpu_count() - (round(load) if load is not None else 0)
    return max(1, min(cpu_count(), free))


def oversubscription_warning(threads: int, load: float | None = None) -> str | None:
    """A one-line warning when `threads` plus the machine's load exceed its cores."""
    load = machine_load() if load is None else load
    if load is None or threads <= 1 or threads + load <= cpu_count() + 0.5:
        return None
    return (f"this machine is busy (load {load:.1f} on {cpu_count()} cores): {threads} threads may run many times "
            "slower than 1; pass --threads 1")


def set_threads(threads: int | None = None, warn: Callable[[str], None] | None = None) -> int:
    """Set torch's (and child processes' OpenMP) thread count and return it.

    None means: OMP_NUM_THREADS if the environment sets it, else `default_threads()`. `warn` is called
    with a one-line message when the choice looks like oversubscription.
    """
    if threads is not None and threads < 1:
        raise PlayworldError(f"--threads must be 1 or more, got {threads}", "pass e.g. --threads 1")
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else default_threads()
    torch.set_num_threads(int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # loader workers and subprocesses inherit it
    message = oversubscription_warning(int(threads))
    if message and warn is not None:
        warn(message)
    return int(threads)


# -- precision ----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool | None:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16, AMX, or arm64 BF16); None if unknown."""
    flags = cpu_flags()
    if not flags:
        return None
    return any(f in flags for f in BF16_FLAGS) or "bf16" in flags


def bf16_slowdown(size: int = 256, repeats: int = 5) -> float:
    """How many times slower a (size x size) matmul runs under bf16 autocast than in fp32 on this CPU,
    measured now (a few milliseconds; the median of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def timed(bf16: bool) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            a @ b  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                a @ b
                times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    return timed(True) / max(timed(False), 1e-9)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """The precision a run computes in: 'auto' is bf16 autocast where the hardware computes bfloat16
    natively (a CPU with AVX-512 BF16 / AMX / arm64 BF16, a CUDA GPU that supports it) and fp32 elsewhere
    (an AVX2-only CPU emulates bf16 ~37x slower); 'fp32' and 'bf16' are taken as given."""
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if dev.type == "cpu" and native_bf16() else "fp32"


def precision_warning(precision: str, device: str | torch.device) -> str | None:
    """A warning when bf16 is asked for on a CPU that emulates it (AVX2 only: ~37x slower than fp32)."""
    if precision != "bf16" or torch.device(device).type != "cpu" or native_bf16():
        return None
    slowdown = bf16_slowdown()
    if native_bf16() is None and slowdown < 1.5:
        return None  # flags unknown, and it measures fast enough: nothing to say
    return (f"bf16 on this CPU is emulated (no AVX-512 BF16 / AMX): it runs {slowdown:.0f}x slower than fp32 here; "
            "drop --set train.precision=bf16 (fp32 is the CPU default)")
