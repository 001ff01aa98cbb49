"""Deliberate torch thread counts (``params.threads``): oversubscribed cores slow CPU runs by an order of magnitude.

torch reads ``OMP_NUM_THREADS`` when it is first imported, so ``set_threads`` sets the variable and, if torch is
already loaded, torch's own setting too; ``torch_threads`` does the same for one block and restores the previous
count after.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def set_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
