"""TrackStar's V: every gradient is divided by sqrt(V) + eps before it is projected (bergson's normalizers).

* **From the optimizer state** when the model folder has ``optimizer.pt`` (the testbed saves AdamW's): bergson's
  ``load_from_optimizer`` reads ``exp_avg_sq`` into one ``AdamNormalizer`` per tracked module.
* **Estimated** otherwise (real-mini, the paper's hub models): the mean over a seeded sample of working-set documents
  of each document's squared gradient (summed over its windows) — the empirical Fisher diagonal, what Adam's
  second moment tracks during training. bergson has no estimator, hence the dozen lines here. Its overall scale
  differs from Adam's (per-document summed loss, no batch averaging, no bias correction); unit normalization makes
  the scores blind to a common scale, only the 1e-8 eps sees it.

``factored`` turns either into bergson's Adafactor normalizer (``AdamNormalizer.to_adafactor``: row and column means
of V, V_ij ~ r_i c_j / mean(r)), which bergson applies to the projection's inputs and output gradients, so the
per-document gradient is never formed; the exact Adam V forces bergson to form each module's full per-document
gradient before projecting.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import ProvenanceError
from .collect import Example, quiet

OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class SecondMoment:
    adam: dict  # module name -> bergson AdamNormalizer (the full V)
    source: str  # "optimizer" | "estimate"
    detail: dict  # where it came from: file or sample size

    def normalizers(self, factored: bool) -> dict:
        """bergson's normalizers: the Adafactor factorization of V, or V itself."""
        return {n: v.to_adafactor() for n, v in self.adam.items()} if factored else dict(self.adam)

    def record(self) -> dict:
        return {"source": self.source, **self.detail}


def optimizer_file(model_dir: Path | None) -> Path | None:
    """The optimizer state beside a local model folder, if there is one."""
    if model_dir is None:
        return None
    path = Path(model_dir) / OPTIMIZER_FILE
    return path if path.is_file() else None


def from_optimizer(model, path: Path, names: list[str]) -> dict:
    """Adam's ``exp_avg_sq`` of every tracked module, through bergson."""
    from bergson.utils.load_from_optimizer import load_from_optimizer

    try:
        with quiet():
            normalizers = load_from_optimizer(model, str(path), target_modules=set(names))
    except (AssertionError, ValueError, KeyError) as exc:
        raise ProvenanceError(
            f"{path} does not hold this model's optimizer second moments: {exc}",
            "save the optimizer state of the model's own training, or remove the file to "
            "estimate V from the working set",
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ProvenanceError(
            f"{path} does not load, truncated or corrupt ({str(exc).strip().splitlines()[0]})",
            "restore it or rebuild the world; without the file stage 02 estimates V from the working set",
        ) from None
    missing = [n for n in names if n not in normalizers]
    if missing:
        raise ProvenanceError(
            f"{path} has no second moment for {len(missing)} tracked modules (e.g. {missing[0]})",
            "save the full optimizer state with the model",
        )
    nonfinite = [
        n
        for n in names
        if any(
            isinstance(v, torch.Tensor) and not torch.isfinite(v).all() for v in normalizers[n].state_dict().values()
        )
    ]
    if nonfinite:
        raise ProvenanceError(
            f"{path} holds non-finite (NaN/inf) second moments for {len(nonfinite)} tracked "
            f"modules (e.g. {nonfinite[0]})",
            "the optimizer state is corrupt: restore it or "
            "rebuild the world; without the file stage 02 estimates V from the working set",
        )
    return normalizers


def estimate(model, documents: list[list[Example]], names: list[str]) -> dict:
    """Mean squared per-document gradient of every tracked module's weight, as ``AdamNormalizer``s (one backward
    pass per document with the weights' gradients on; the windows of a document form one batch, so their losses
    sum)."""
    from bergson.collector.collector import token_losses
    from bergson.data import pad_and_tensor
    from bergson.gradients import AdamNormalizer, LayerAdapter
    from bergson.utils.load_from_optimizer import orient_second_moment

    if not documents:
        raise ProvenanceError("no calibration documents to estimate V from", "the working set is empty")
    layers = {n: model.base_model.get_submodule(n) for n in names}
    weights = [layer.weight for layer in layers.values()]
    sums = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
    device = weights[0].device
    for w in weights:
        w.requires_grad_(True)
    try:
        for doc in documents:
            x, y, _, _ = pad_and_tensor([e.input_ids for e in doc], device=device)
            loss = token_losses("ce", model(x).logits[:, :-1], y[:, 1:]).sum()
            for total, grad in zip(sums, torch.autograd.grad(loss, weights)):
                total.add_(grad.double().square())
    finally:
        for w in weights:
            w.requires_grad_(False)
    normalizers = {}
    for (name, layer), total in zip(layers.items(), sums):
        o, i = getattr(layer, LayerAdapter.out_attr(layer)), getattr(layer, LayerAdapter.in_attr(layer))
        v = orient_second_moment((total / len(documents)).float(), o, i, layer=layer)
        normalizers[name] = AdamNormalizer(weight_avg_sq=v)
    return normalizers


def second_moment(model, model_dir: Path | None, names: list[str], calibration: list[list[Example]]) -> SecondMoment:
    """V for one model: its optimizer state when present, else the estimate on ``calibration``."""
    path = optimizer_file(model_dir)
    if path is not None:
        return SecondMoment(from_optimizer(model, path, names), "optimizer", {"file": path.name})
    return SecondMoment(estimate(model, calibration, names), "estimate", {"calibration_documents": len(calibration)})
