"""What this process used: its own peak resident memory, for the stats a stage or bench records."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's own peak resident set, in MiB. On Linux, VmHWM, which fork and exec reset. Not ``ru_maxrss``:
    a worker started by fork + exec (multiprocessing's spawn, a subprocess) inherits its parent's resident size as its
    own maximum, so each worker would report at least its parent's. Elsewhere ``ru_maxrss`` (bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
