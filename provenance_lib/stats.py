"""Statistics shared by the stages: the corpus-skew figures the paper reports (stage 01, and the binned matrices of
stages 03-04), the within-benchmark z-score, and the bootstrap intervals, p-values and Benjamini-Hochberg
adjustment stages 03-04 report."""

from __future__ import annotations

import warnings

import numpy as np


def gini(values: np.ndarray) -> float:
    """Gini coefficient over bins (empty bins included): 0 = every bin equal, (n-1)/n = all in one bin."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def effective_bins(values: np.ndarray) -> float:
    """exp(Shannon entropy) of the share per bin (Hill number of order 1). Chosen over inverse Simpson because it
    reproduces the paper's scale: a 576-bin log-normal with the paper's Gini 0.68 has exp(H) = 216 (paper: 236)
    but inverse Simpson = 97."""
    p = np.asarray(values, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def top_share(values: np.ndarray, k: int) -> float:
    x = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    return float(x[:k].sum() / x.sum())


def skew_statistics(docs: np.ndarray, tokens: np.ndarray) -> dict[str, float]:
    """The paper's corpus-skew figures, under the keys of paper_reported.yaml's ``corpus_skew``."""
    return {
        "gini_documents": gini(docs),
        "gini_tokens": gini(tokens),
        "effective_bins_documents": effective_bins(docs),
        "effective_bins_tokens": effective_bins(tokens),
        **{f"top_{k}_bins_token_share": top_share(tokens, k) for k in (10, 50, 100)},
    }


# ----------------------------------------------------------------------------------------------- z-scores, bootstrap
def zscore(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """(x - mean) / std (ddof 1) over the finite entries, NaN elsewhere: the paper's within-benchmark z over bins.
    All NaN when fewer than two entries are finite or they do not vary (no z is defined). ``scale``: divide by this
    std instead of the entries' own (bootstrap replicates keep the point estimate's scale, see stage 03)."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.full(x.shape, np.nan)
    if finite.sum() >= 2:
        sd = x[finite].std(ddof=1) if scale is None else scale
        if sd > 0:
            out[finite] = (x[finite] - x[finite].mean()) / sd
    return out


def percentile_interval(replicates: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided percentile bootstrap interval over ``axis``, ignoring NaN replicates (NaN where none is finite)."""
    tail = 50 * (1 - level)
    r = np.asarray(replicates, dtype=np.float64)
    if np.isfinite(r).all():
        low, high = np.percentile(r, [tail, 100 - tail], axis=axis)
        return low, high
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, which is what we want
        low, high = np.nanpercentile(r, [tail, 100 - tail], axis=axis)
    return low, high


def bootstrap_p(estimate: np.ndarray, replicates: np.ndarray, null: float = 0.0, axis: int = 0) -> np.ndarray:
    """Two-sided p-value of ``statistic == null`` from the bootstrap standard error (the normal-theory test with a
    bootstrap SE, Efron & Tibshirani 1993). Unlike a percentile p-value it is not floored at 1/replicates, which
    Benjamini-Hochberg over 576 bins needs: with 1,000 replicates no bin could otherwise pass."""
    from scipy.stats import norm

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(np.asarray(replicates, dtype=np.float64), axis=axis, ddof=1)
        return 2 * norm.sf(np.abs(np.asarray(estimate, dtype=np.float64) - null) / se)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy's false_discovery_control) over the finite entries; NaN stays."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = false_discovery_control(p[finite], method="bh")
    return q


# ----------------------------------------------------------------------------------------------- known answers
def separation(values: np.ndarray, carriers: np.ndarray, recall_k: int | None) -> dict:
    """AUC (the chance a carrier outscores a non-carrier) and recall@k (the carriers among the k top-scored
    documents, over all carriers; k = the number of carriers when None). NaN where there are no carriers (a null
    world) or nothing else."""
    from sklearn.metrics import roc_auc_score

    n = int(carriers.sum())
    k = recall_k or n
    if n == 0 or n == len(carriers):
        return dict(carriers=n, auc=np.nan, recall_at_k=np.nan, k=k)
    top = np.argsort(-values, kind="stable")[:k]
    return dict(carriers=n, auc=float(roc_auc_score(carriers, values)), recall_at_k=float(carriers[top].sum() / n), k=k)


def pair_auc(high: np.ndarray, low: np.ndarray) -> float:
    """The chance an entry of ``high`` exceeds one of ``low`` (ties count half); NaN if either is empty."""
    if not len(high) or not len(low):
        return np.nan
    diff = np.subtract.outer(np.asarray(high, dtype=np.float64), np.asarray(low, dtype=np.float64))
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())
