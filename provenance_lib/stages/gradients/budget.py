"""The collection's token batch, chosen by memory: ``gradients.memory_gb`` caps the peak resident memory of the
process that collects, and the token batch is the largest that fits, from the model's per-token cost measured here.

The cost is measured, not assumed: two probe passes of bergson's collection over the first calibration windows,
at ``PROBE_TOKENS`` and twice as many tokens, each after the process's peak resident set (VmHWM) is reset to its
current size; the peak grows by the same bytes per token at any batch size (activations, logits and their gradients
all scale with the tokens of a batch), so the two peaks give the slope and the resident memory the batch adds to.
What the probe measures depends on the model, the window length, the device's kernels and the allocator: a batch
chosen on one machine is the one that fits there.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

from ...errors import ProvenanceError
from ...params.gradients import Gradients
from ...process import release_freed_memory
from .collect import Example, Processor, gradients

PROBE_TOKENS = 512
CLEAR_REFS, STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")
GB = 1e9


@dataclass(frozen=True)
class TokenBatch:
    """The token batch the stage collects with, and how it was chosen (recorded in the checkpoint's prepare.json)."""

    token_batch_size: int
    rule: str  # "configured" | "memory budget"
    memory_gb: float | None = None
    bytes_per_token: float | None = None
    resident_gb: float | None = None  # what the process held at the first probe's peak, less its probe tokens
    predicted_peak_gb: float | None = None

    def record(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _status_kib(field: str) -> int | None:
    if not STATUS.exists():
        return None
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    """Set this process's VmHWM to its current resident size (Linux; False where that is not possible)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _probe_peak(model, proc: Processor, examples: list[Example], tokens: int, scratch: Path) -> float:
    """Peak resident bytes of one collection pass over ``examples`` in one batch of ``tokens`` tokens."""
    release_freed_memory(at_least=0)
    _reset_peak()
    gradients(model, proc, examples, tokens, scratch)
    return _status_kib("VmHWM") * 1024


def probe_windows(windows: list[Example], tokens: int) -> tuple[list[Example], int]:
    """The first windows (again from the first when there are too few) whose batch, padded to its longest window,
    holds at least ``tokens`` tokens, and its padded size: bergson's token batch counts padded tokens."""
    out, longest = [], 0
    for window in itertools.cycle(windows):
        out.append(window)
        longest = max(longest, len(window.input_ids))
        if len(out) * longest >= tokens:
            break
    return out, len(out) * longest


def choose_token_batch(
    model, proc: Processor, windows: list[Example], settings: Gradients, scratch: Path
) -> TokenBatch:
    """``settings.token_batch_size`` when no budget is set; else the largest batch (at most that, at least one
    window) whose predicted peak stays within ``memory_gb``. A budget that cannot hold one window is an error."""
    configured = TokenBatch(settings.token_batch_size, "configured")
    if settings.memory_gb is None:
        return configured
    if not _reset_peak() or _status_kib("VmHWM") is None:
        raise ProvenanceError(
            "gradients.memory_gb needs the process's peak memory, which only Linux resets (/proc/self/clear_refs)",
            "set gradients.memory_gb: null and size gradients.token_batch_size by hand",
        )
    (small, n_small), (large, n_large) = probe_windows(windows, PROBE_TOKENS), probe_windows(windows, 2 * PROBE_TOKENS)
    if n_large <= n_small:
        return configured  # no calibration windows: no document to collect either
    peak_small = _probe_peak(model, proc, small, n_small, scratch)
    peak_large = _probe_peak(model, proc, large, n_large, scratch)
    per_token = max(peak_large - peak_small, 0.0) / (n_large - n_small)
    resident = peak_small - per_token * n_small
    budget = settings.memory_gb * GB
    if per_token > 0:
        fits = int((budget - resident) / per_token)
    else:  # no growth measurable between the probes: any batch fits that the resident memory leaves room for
        fits = settings.token_batch_size if resident < budget else 0
    if fits < settings.max_length:
        raise ProvenanceError(
            f"gradients.memory_gb ({settings.memory_gb} GB) cannot hold one window of {settings.max_length} tokens: "
            f"the model needs ~{(resident + per_token * settings.max_length) / GB:.1f} GB for it "
            f"({resident / GB:.1f} GB resident + {per_token / 1e6:.2f} MB per token)",
            "raise gradients.memory_gb or lower gradients.max_length",
        )
    size = min(settings.token_batch_size, fits)
    return TokenBatch(
        size, "memory budget", settings.memory_gb, per_token, resident / GB, (resident + per_token * size) / GB
    )
