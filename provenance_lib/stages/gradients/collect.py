"""Driving bergson: the model in fp32, the processor that carries V and the projection, and the per-sequence
gradients of a list of token sequences. bergson's ``InMemoryCollector`` computes them with its own hooks and
projections (every ``nn.Linear`` under ``model.base_model``); this module only decides what goes in.

A sequence's loss is bergson's: the summed next-token cross-entropy over its labelled positions (``labels`` -100
elsewhere), in fp32. Documents longer than ``max_length`` are cut into windows that overlap by one token, so every
token after the first is predicted exactly once; a document's gradient is the sum of its windows' (done by the
caller, before preconditioning and unit normalization).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator

import numpy as np
import torch

from ...errors import ProvenanceError
from ...models import ModelRef, check_model_dir, load_causal_lm
from ...process import release_freed_memory

LOSS = dict(loss_fn="ce", loss_reduction="sum", precision="fp32")


@dataclass(frozen=True)
class Example:
    """One sequence bergson differentiates: token ids, and labels (-100 = no loss) or None (loss on every next
    token)."""

    input_ids: list[int]
    labels: list[int] | None = None


def windows(ids: list[int], max_length: int, max_windows: int | None) -> list[list[int]]:
    """Cut a document's tokens into windows of at most ``max_length``, overlapping by one token (the next window
    predicts from the last token of the one before). A document of one token has no next-token loss: none."""
    if len(ids) < 2:
        return []
    stride = max_length - 1
    starts = range(0, len(ids) - 1, stride)
    out = [ids[s : s + max_length] for s in starts]
    return out[:max_windows] if max_windows else out


# ----------------------------------------------------------------------------------------------- models
def pick_device(setting: str) -> str:
    if setting == "cuda" and not torch.cuda.is_available():
        raise ProvenanceError("gradients.device is cuda but torch sees no CUDA device", "set gradients.device: auto")
    return "cuda" if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()) else "cpu"


def load_model(ref: ModelRef, device: str):
    """(model, tokenizer) in fp32, set up for bergson's hooks: every weight frozen, and the input embeddings' output
    requiring grad, so the backward pass reaches every layer without forming any weight's gradient. (bergson's own
    set-up makes the embedding weight require grad instead: each backward pass then forms its vocab x hidden
    gradient, and with tied embeddings also the output layer's — 12% of a plain forward + backward on the testbed
    model.) bergson reads the gradient dtype off a parameter that requires grad: the smallest one, a norm weight,
    serves. On CUDA, the math SDPA kernel (bergson's ``force_math_sdp``, as bergson's own CUDA runs set it)."""
    model, tokenizer = load_causal_lm(ref, dtype=torch.float32, device=device)
    if device == "cuda":
        from bergson.config import IndexConfig
        from bergson.utils.worker_utils import apply_force_math_sdp

        apply_force_math_sdp(IndexConfig(run_path="", force_math_sdp=True))
    model.requires_grad_(False)
    min(model.base_model.parameters(), key=lambda p: p.numel()).requires_grad_(True)
    model.get_input_embeddings().register_forward_hook(lambda module, inputs, output: output.requires_grad_(True))
    return model, tokenizer


def tracked_shapes(model) -> dict[str, tuple[int, int]]:
    """bergson's tracked modules in collection order, each with its weight's (out, in) shape."""
    from bergson.collector.collector import HookCollectorBase

    targets = HookCollectorBase.discover_targets(model.base_model)
    return {name: (shape[0], shape[1]) for name, (_, shape, _) in targets.items()}


def grad_sizes(model, projection_dim: int) -> dict[str, int]:
    """The tracked modules in collection order and their gradient sizes (p^2 each, or out x in unprojected):
    the column layout of every gradient matrix this stage keeps."""
    return {
        name: projection_dim**2 if projection_dim else out * in_ for name, (out, in_) in tracked_shapes(model).items()
    }


def parameter_shapes(ref: ModelRef) -> dict[str, tuple]:
    """Every parameter's shape, from the model's config alone (built on the meta device: no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(ref.name_or_path, revision=ref.revision)
    except OSError as exc:
        raise ProvenanceError(
            f"model {ref} has no readable config: {str(exc).splitlines()[0]}", "check the model folder or hub id"
        ) from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def check_same_shapes(base: ModelRef, query: ModelRef) -> None:
    """Query gradients live in the base model's parameter space: every parameter must have the same shape."""
    a, b = parameter_shapes(base), parameter_shapes(query)
    if a != b:
        differ = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
        raise ProvenanceError(
            f"the query model {query} has other parameter shapes than the base model {base} "
            f"({len(differ)} differ, e.g. {differ[0]}: {b.get(differ[0])} vs {a.get(differ[0])})",
            "use a query model fine-tuned from the base model, or set gradients.query.model: base",
        )


def check_models(base: ModelRef, query: ModelRef) -> None:
    """Before anything slow: both models load (config, weights, a tokenizer that fits the embedding), the query
    model has the base model's parameter shapes and tokenizer."""
    from transformers import AutoTokenizer

    for ref in {base, query}:
        if ref.is_local:
            check_model_dir(ref.name_or_path)
    if query == base:
        return
    check_same_shapes(base, query)
    vocab = [AutoTokenizer.from_pretrained(r.name_or_path, revision=r.revision).get_vocab() for r in (base, query)]
    if vocab[0] != vocab[1]:
        raise ProvenanceError(
            f"the query model {query} has another tokenizer than the base model {base}",
            "save the base model's tokenizer with the query model",
        )


# ----------------------------------------------------------------------------------------------- gradients
@dataclass
class Processor:
    """bergson's GradientProcessor (V and the projection; it caches the projection matrices, so reuse one per
    model) and, when V is factored and gradients are projected, V folded into the projection matrices."""

    bergson: object
    folded: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # module -> (row, column) scale
    scaled: dict = field(default_factory=dict)  # the folded matrices, cached

    @property
    def projection_dim(self) -> int:
        return self.bergson.projection_dim or 0


def processor(normalizers: dict, projection_dim: int, seed: int) -> Processor:
    """V (bergson normalizers) and the projection. A factored V with a projection is folded into the projection
    matrices (``_collector_class``); anything else goes to bergson as normalizers."""
    from bergson.gradients import AdafactorNormalizer, GradientProcessor

    fold = projection_dim > 0 and normalizers and all(isinstance(v, AdafactorNormalizer) for v in normalizers.values())
    if not fold:
        return Processor(
            GradientProcessor(dict(normalizers), projection_dim=projection_dim or None, projection_seed=seed)
        )
    return Processor(
        GradientProcessor({}, projection_dim=projection_dim, projection_seed=seed),
        {name: adafactor_scales(v) for name, v in normalizers.items()},
    )


def adafactor_scales(normalizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The output-gradient and input scales bergson's collector applies for an Adafactor normalizer
    (``HookCollectorBase.forward_hook`` / ``_module_gradient``): g * sqrt(mean(r)) / sqrt(r), a / sqrt(c)."""
    row, col = normalizer.row.add(1e-30), normalizer.col.add(1e-30)
    return row.mean().sqrt() * row.rsqrt(), col.rsqrt()


def _collector_class(folded: bool):
    """bergson's InMemoryCollector, catching each module's output gradient with a hook on the output tensor instead
    of a full backward hook on the module.

    bergson registers ``register_full_backward_hook``, which routes every hooked module's inputs and outputs through
    torch's ``BackwardHookFunction``; the collector uses only the output gradient, which a tensor hook registered in
    the forward hook hands over at the same point of the backward pass. Same numbers (tests/test_gradients_parts.py)
    and less memory: the peak of a SmolLM2-135M collection pass drops from bergson's 1.6x a pass without hooks
    (bench/bench_gradients.py).

    After each batch the freed memory goes back to the system, so the peak does not grow batch after batch.

    ``folded``: the projection matrices also carry the factored V. Projecting a * c^-1/2 with R is projecting a with
    R diag(c^-1/2), and likewise for the output gradients, so V costs nothing per token (bergson otherwise rescales
    every module's inputs and output gradients, [tokens x width] each). Same numbers as the normalizer path."""
    from bergson.collector.in_memory_collector import InMemoryCollector

    @dataclass(kw_only=True)
    class OutputHookCollector(InMemoryCollector):
        def __enter__(self):
            for name, (_, _, collect_bias) in self.target_info.items():
                layer = self.model.get_submodule(name)
                layer._name, layer._collect_bias = name, collect_bias
                self._fwd_hooks.append(layer.register_forward_hook(self._input_and_output_hook))
            return self

        def _input_and_output_hook(self, module, inputs, output):
            self._process_input(module, inputs, output)
            if output.requires_grad:
                output.register_hook(lambda grad, module=module: self._process_grad(module, None, (grad,)))

        def process_batch(self, indices, **kwargs):
            super().process_batch(indices, **kwargs)
            release_freed_memory()  # else the heap fragments batch after batch (see release_freed_memory)

    if not folded:
        return OutputHookCollector

    @dataclass(kw_only=True)
    class FoldedCollector(OutputHookCollector):
        folded: Processor

        def projection(self, name, m, n, role, device, dtype):
            key = (name, role, device, dtype)
            scaled = self.folded.scaled.get(key)
            if scaled is None:
                matrix = super().projection(name, m, n, role, device, dtype)
                row, col = self.folded.folded[name]
                scaled = matrix * (row if role == "left" else col).to(device, dtype)
                self.folded.scaled[key] = scaled
            return scaled

    return FoldedCollector


def forward_backward(model, x: torch.Tensor, y: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
    """One batch's forward and backward pass with the stage's loss, each sequence's summed next-token
    cross-entropy over its labelled positions; returns those sums. bergson's ``fwd_bwd`` computes the same loss from
    the logits of every position, then slices the last one off, and the slice's reshape copies them all (tokens x
    vocabulary floats: 7% of SmolLM2-135M's peak at 2,048 tokens). Here the model forms logits only where there is
    a label to predict (HF's ``logits_to_keep`` mask: no padding, no prompt, no last position) and keeps no KV
    cache. Same gradients (tests/test_gradients_parts.py)."""
    labelled = torch.zeros_like(x, dtype=torch.bool)
    labelled[:, :-1] = y[:, 1:] != -100
    logits = model(x, logits_to_keep=labelled, use_cache=False).logits  # (labelled positions, vocabulary)
    token_losses = torch.nn.functional.cross_entropy(logits, y[:, 1:][labelled[:, :-1]], reduction="none")
    losses = token_losses.new_zeros(len(x)).index_add_(0, labelled.nonzero()[:, 0], token_losses)
    losses.sum().backward()
    model.zero_grad()
    return losses


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """bergson logs every collector at INFO, prints what it loads and draws a progress bar per call; the stage
    reports its own progress."""
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def gradients(
    model, proc: Processor, examples: list[Example], token_batch_size: int, scratch: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example gradients (examples x D, float32, columns in ``grad_sizes`` order) and summed losses, computed by
    bergson: its collector hooks every tracked module, divides by sqrt(V) and projects (``_collector_class``), over
    batches of ``forward_backward``."""
    from bergson.collector.collector import CollectorComputer
    from bergson.config import IndexConfig
    from bergson.data import allocate_batches
    from datasets import Dataset

    if not examples:
        return np.zeros((0, sum(grad_sizes(model, proc.projection_dim).values())), np.float32), np.zeros(0)
    columns = {"input_ids": [e.input_ids for e in examples], "length": [len(e.input_ids) for e in examples]}
    if any(e.labels is not None for e in examples):
        columns["labels"] = [e.labels if e.labels is not None else e.input_ids for e in examples]
    data = Dataset.from_dict(columns)
    cfg = IndexConfig(
        run_path=str(scratch), projection_dim=proc.projection_dim, token_batch_size=token_batch_size, **LOSS
    )
    cfg.partial_run_path.mkdir(parents=True, exist_ok=True)  # bergson writes its token count there
    with quiet():
        extra = {"folded": proc} if proc.folded else {}
        collector = _collector_class(bool(proc.folded))(
            model=model.base_model, data=data, cfg=cfg, processor=proc.bergson, **extra
        )
        batches = allocate_batches(columns["length"], token_batch_size)
        computer = CollectorComputer(model, data, collector=collector, batches=batches, cfg=cfg)
        computer.forward_backward = forward_backward
        computer.run_with_collector_hooks()
    return collector.builder.grad_buffer, collector.per_doc_losses.cpu().numpy()


def nonfinite_rows(grads: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Rows whose gradient or loss is NaN/inf. bergson clamps an infinite gradient to the float32 limits, so a
    value at the limit counts as infinite too."""
    limit = np.finfo(np.float32).max
    bad = ~np.isfinite(grads).all(axis=1) | (np.abs(np.nan_to_num(grads)) >= limit).any(axis=1)
    return bad | ~np.isfinite(losses)
