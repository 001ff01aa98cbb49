"""TrackStar's R: per module, the autocorrelation of the (V-normalized, projected) gradients on the train side (a
sample of the working set) and on the query side, mixed ``H = lambda H_query + (1 - lambda) H_train`` and applied as
the damped ``H^-1/2`` to both sides before unit normalization (bergson's split preconditioning).

bergson does the statistics: ``process_autocorrelation_matrices`` (the Gram over rows, its eigendecomposition),
``compute_lambda`` (the mixing coefficient: the two pooled, sorted spectra cross at the target component) and
``DensePreconditioner`` (``1 / sqrt(eigenvalue + damping x mean eigenvalue)``). The target component is scaled to
the run: bergson's default of 1000 fits TrackStar's 65,536 components and thousands of queries; with a few hundred
queries the query autocorrelation has fewer non-zero eigenvalues than that, the crossing lands on a zero and lambda
degenerates to 1 (a rank-deficient R). Here the target is ``downweight_share`` of all components, capped at the
smaller of the two ranks.

Unprojected gradients (the exactness reference) have modules of 49k+ entries, whose d x d autocorrelation bergson
would form densely. ``LowRank`` applies the same damped ``H^-1/2`` from the Gram of the rows instead: the mixed H is
``A^T A`` with ``A`` the weighted train and query rows, its non-zero eigenpairs come from ``A A^T``, and every other
direction gets the damping alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ...threads import torch_threads


def column_slices(sizes: dict[str, int]) -> dict[str, slice]:
    """Each module's columns in a gradient row (the ``grad_sizes`` order)."""
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out


def _rank(eigenvalues: torch.Tensor) -> int:
    eigenvalues = eigenvalues.double().clamp_min(0)
    if not len(eigenvalues) or eigenvalues.max() <= 0:
        return 0
    return int((eigenvalues > eigenvalues.max() * len(eigenvalues) * torch.finfo(torch.float32).eps).sum())


@dataclass
class Mixing:
    """How the two sides were mixed: lambda, the target component and what capped it."""

    lam: float
    target: int
    components: int
    query_rank: int
    train_rank: int
    query_rows: int
    train_rows: int

    def record(self) -> dict:
        return dict(self.__dict__)


def mixing(
    query_eigen: dict, train_eigen: dict, components: int, share: float, query_rows: int, train_rows: int, mix: bool
) -> Mixing:
    """lambda from bergson's ``compute_lambda`` at a target scaled to the run (module docstring)."""
    from bergson.utils.math import compute_lambda

    query_rank = sum(_rank(vals) for vals, _ in query_eigen.values())
    train_rank = sum(_rank(vals) for vals, _ in train_eigen.values())
    target = max(1, min(math.ceil(share * components), query_rank, train_rank))
    lam = compute_lambda(query_eigen, train_eigen, target_components=target) if mix else 0.0
    return Mixing(float(lam), target, components, query_rank, train_rank, query_rows, train_rows)


def _eigen(grads: np.ndarray, sizes: dict[str, int]):
    """bergson's autocorrelation statistics of the rows: per module the Gram / rows and its eigendecomposition."""
    from bergson.gradients import GradientProcessor
    from bergson.process_autocorrelation import process_autocorrelation_matrices

    rows = torch.from_numpy(np.ascontiguousarray(grads, dtype=np.float32))
    grams = {name: rows[:, cols].T @ rows[:, cols] for name, cols in column_slices(sizes).items()}
    proc = GradientProcessor()
    process_autocorrelation_matrices(proc, grams, len(rows), sizes, rank=0)
    return proc.hessians, proc.hessians_eigen


@dataclass
class Curvature:
    """The fitted split preconditioner: per module ``H^-1/2`` (p^2 x p^2), and how it was mixed."""

    h_inv_sqrt: dict[str, torch.Tensor]
    sizes: dict[str, int]
    mixing: Mixing
    damping: float

    def apply(self, grads: np.ndarray) -> np.ndarray:
        """Precondition gradient rows (rows x D) module by module."""
        out = np.empty(grads.shape, dtype=np.float64)
        for name, cols in column_slices(self.sizes).items():
            block = torch.from_numpy(np.ascontiguousarray(grads[:, cols], dtype=np.float64))
            out[:, cols] = (block @ self.h_inv_sqrt[name].double()).numpy()
        return out

    def state(self) -> dict:
        return {
            "h_inv_sqrt": self.h_inv_sqrt,
            "sizes": self.sizes,
            "mixing": self.mixing.record(),
            "damping": self.damping,
        }

    @classmethod
    def from_state(cls, state: dict) -> Curvature:
        return cls(state["h_inv_sqrt"], state["sizes"], Mixing(**state["mixing"]), state["damping"])


@torch_threads(1)
def fit(
    train: np.ndarray, query: np.ndarray, sizes: dict[str, int], share: float, damping: float, mix: bool = True
) -> Curvature:
    """Mix the train-side and query-side autocorrelations and invert to the damped H^-1/2 (bergson throughout).
    One thread: LAPACK's eigh on these small matrices runs 30x slower on two threads of a busy machine."""
    from bergson.config import InversionConfig
    from bergson.gradients import GradientProcessor
    from bergson.hessians.preconditioner import DensePreconditioner

    train_h, train_eigen = _eigen(train, sizes)
    query_h, query_eigen = _eigen(query, sizes)
    how = mixing(query_eigen, train_eigen, sum(sizes.values()), share, len(query), len(train), mix)
    mixed = {name: how.lam * query_h[name] + (1 - how.lam) * train_h[name] for name in sizes}
    inverse = DensePreconditioner.from_processor(
        GradientProcessor(hessians=mixed), inversion_cfg=InversionConfig(damping_factor=damping), power=-0.5
    )
    return Curvature(inverse.h_inv, dict(sizes), how, damping)


def unit_rows(grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows divided by their norms (float64), and the norms."""
    norms = np.linalg.norm(grads, axis=1)
    return grads / np.maximum(norms, np.finfo(np.float64).tiny)[:, None], norms


# ----------------------------------------------------------------------------------------------- unprojected
@dataclass
class LowRank:
    """The same damped, mixed H^-1/2 for unprojected gradients, from the Gram of the rows (module docstring)."""

    sizes: dict[str, int]
    mixing: Mixing
    damping: float
    bases: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = field(default_factory=dict)  # U, 1/sqrt(s+d), d

    def apply(self, grads: np.ndarray) -> np.ndarray:
        out = np.empty(grads.shape, dtype=np.float64)
        for name, cols in column_slices(self.sizes).items():
            x = torch.from_numpy(np.ascontiguousarray(grads[:, cols], dtype=np.float64))
            basis, scale, delta = self.bases[name]
            inside = x @ basis
            out[:, cols] = (x / math.sqrt(delta) + (inside * (scale - 1 / math.sqrt(delta))) @ basis.T).numpy()
        return out


@torch_threads(1)
def fit_low_rank(
    train: np.ndarray, query: np.ndarray, sizes: dict[str, int], share: float, damping: float, mix: bool = True
) -> LowRank:
    def spectra(rows: np.ndarray):
        eig = {}
        for name, cols in column_slices(sizes).items():
            block = torch.from_numpy(np.ascontiguousarray(rows[:, cols], dtype=np.float64))
            vals = torch.linalg.eigvalsh(block @ block.T / len(rows)).clamp_min(0)
            eig[name] = (vals, None)
        return eig

    how = mixing(spectra(query), spectra(train), sum(sizes.values()), share, len(query), len(train), mix)
    result = LowRank(dict(sizes), how, damping)
    for name, cols in column_slices(sizes).items():
        q = torch.from_numpy(np.ascontiguousarray(query[:, cols], dtype=np.float64)) * math.sqrt(how.lam / len(query))
        t = torch.from_numpy(np.ascontiguousarray(train[:, cols], dtype=np.float64))
        a = torch.cat([q, t * math.sqrt((1 - how.lam) / len(train))])
        vals, vecs = torch.linalg.eigh(a @ a.T)
        vals = vals.clamp_min(0)
        keep = vals > vals.max() * len(vals) * torch.finfo(torch.float64).eps
        delta = damping * float(vals.sum()) / sizes[name]  # damping x the mean of all d eigenvalues
        basis = a.T @ vecs[:, keep] / vals[keep].sqrt()
        result.bases[name] = (basis, 1 / (vals[keep] + delta).sqrt(), delta)
    return result
