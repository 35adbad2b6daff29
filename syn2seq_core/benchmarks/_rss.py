"""Peak resident memory of this process, for the benchmarks that measure it in a fresh child process."""

from __future__ import annotations

import sys


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ``/proc/self/clear_refs``); False where that is not possible,
    and :func:`peak_mb` is then the peak since the process started."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """Peak resident memory in MiB since the start or the last :func:`reset_peak` (right after one: now)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
