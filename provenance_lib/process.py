"""What this process used: its own peak resident memory, for the stats a stage or bench records."""

from __future__ import annotations

import ctypes
import functools
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _glibc():
    """glibc's (mallinfo2, malloc_trim), or None elsewhere (other libcs, glibc before 2.33)."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2, trim = libc.mallinfo2, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    return mallinfo2, trim


def release_freed_memory(at_least: int = 256 * 2**20) -> None:
    """Hand the memory freed since back to the system when the heap holds ``at_least`` bytes of it (glibc's
    ``malloc_trim``; nothing elsewhere). Below that, trimming costs more than it saves: the pages returned are
    faulted back in by the next allocations.

    A pass that frees gigabytes of activations while smaller blocks allocated among them stay alive leaves glibc's
    heap fragmented: memory freed but not returned, which the next pass does not fully reuse, so the heap grows
    again. Stage 02's collection keeps each module's projected activations (tokens x 16 floats) from its forward to
    its backward hook, among the batch's large activations; over three batches of SmolLM2-135M at 2,048 tokens its
    peak resident set grew by ~1.3 GB without a trim between batches and not at all with one."""
    glibc = _glibc()
    if glibc is not None and glibc[0]().fordblks >= at_least:
        glibc[1](0)
