"""One unlearning run: a LoRA adapter (peft) trained to forget a document set while keeping a retain set.

* **NGDiff** (normalized gradient difference): per step, the gradient of the forget loss g_F and of the retain loss
  g_R (each the mean per-document length-normalized NLL over ``batch_size x grad_accumulation`` documents) are taken
  separately, and the optimizer steps with ``g = g_R / |g_R| - g_F / |g_F|`` written into ``.grad``: descending g
  lowers the retain loss and raises the forget loss, each at unit scale whatever their magnitudes.
* **GradDiff**: one backward pass of ``-NLL_F + NLL_R``.

AdamW at a constant learning rate (no warm-up), gradient clipping, LoRA on the attention projections. The loop runs
under ``accelerate`` (device placement; one process per run: runs are parallel as a job array, never inside one).
The stop rule evaluates the stop benchmarks every ``stop_check_every`` steps and ends the run when their mean
accuracy falls below ``stop_ratio`` x the base model's; a run given ``steps`` replays exactly that many (the random
partner of a targeted run that stopped early).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ...errors import ProvenanceError


@dataclass
class TrainLog:
    steps: int = 0
    stopped_early: bool = False
    forget_nll: list[float] = field(default_factory=list)  # per step, before the update
    retain_nll: list[float] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # stop checks: step, accuracy
    seconds: float = 0.0


def attach_lora(model, lora):
    """Wrap ``model`` in a peft LoRA model (``lora``: ``unlearning.training.lora``); only the adapter trains. Module
    names are matched by suffix, which fits OLMo3 and Llama / SmolLM2 alike (``q_proj`` ... ``o_proj``)."""
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(lora.target_modules) - names)
    if missing:
        raise ProvenanceError(
            f"the base model ({type(model).__name__}) has no modules named {missing}",
            "set unlearning.training.lora.target_modules to its attention projections",
        )
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft reads a name transformers 5 deprecates: once per run, nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def document_nll(model, tokenizer, texts: list[str], max_length: int, device) -> torch.Tensor:
    """Each document's mean token NLL (length-normalized, so long documents do not dominate), shape (len(texts),)."""
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length).to(device)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets, mask = batch["input_ids"][:, 1:], batch["attention_mask"][:, 1:].to(logits.dtype)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")
    return (nll * mask).sum(1) / mask.sum(1).clamp(min=1)


class Unlearner:
    """Trains one adapter; ``texts`` turns a batch of ids into texts (``DocumentStore.texts``)."""

    def __init__(self, model, tokenizer, training, texts: Callable[[list[str]], list[str]]):
        from accelerate import Accelerator

        self.accelerator = Accelerator()
        if self.accelerator.num_processes > 1:
            raise ProvenanceError(
                "an unlearning run is one process (runs are parallel as a job array)",
                "launch each run with accelerate launch --num_processes 1",
            )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self.training, self.tokenizer, self.texts = training, tokenizer, texts
        self.params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self.params, lr=training.lr, weight_decay=training.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)

    def _nll(self, ids: list[str]) -> torch.Tensor:
        return document_nll(
            self.model, self.tokenizer, self.texts(ids), self.training.max_length, self.accelerator.device
        ).mean()

    def _gradient(self, batches: list[list[str]]) -> tuple[list[torch.Tensor], float]:
        """The mean loss's gradient over the micro-batches (accumulated), taken out of ``.grad``; and the loss."""
        total = 0.0
        for ids in batches:
            loss = self._nll(ids) / len(batches)
            self.accelerator.backward(loss)
            total += loss.item()
        grads = [p.grad.detach().clone() for p in self.params]
        self.optimizer.zero_grad(set_to_none=True)
        return grads, total

    def step(self, forget: list[list[str]], retain: list[list[str]]) -> tuple[float, float]:
        """One optimizer step on these micro-batches; returns (forget NLL, retain NLL) before the update."""
        if self.training.method == "ngdiff":
            g_forget, forget_nll = self._gradient(forget)
            g_retain, retain_nll = self._gradient(retain)
            norm_f, norm_r = _norm(g_forget), _norm(g_retain)
            for p, gf, gr in zip(self.params, g_forget, g_retain):
                p.grad = gr / norm_r - gf / norm_f
        else:
            forget_nll = retain_nll = 0.0
            for f_ids, r_ids in zip(forget, retain):
                nll_f, nll_r = self._nll(f_ids), self._nll(r_ids)
                self.accelerator.backward((nll_r - nll_f) / len(forget))
                forget_nll += nll_f.item() / len(forget)
                retain_nll += nll_r.item() / len(forget)
        self.accelerator.clip_grad_norm_(self.params, self.training.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return forget_nll, retain_nll

    def run(
        self,
        forget: Iterator[list[str]],
        retain: Iterator[list[str]],
        steps: int | None,
        stop_check: Callable[[], float] | None = None,
        stop_below: float | None = None,
    ) -> TrainLog:
        """Train for ``steps`` steps (None: up to ``max_steps`` with the stop rule, when ``stop_check`` is given:
        a callable returning the stop benchmarks' mean accuracy of the model as it is)."""
        t, log, start = self.training, TrainLog(), time.perf_counter()
        every = t.stop_check_every if steps is None and stop_check is not None else None
        self.model.train()
        for step in range(1, (steps or t.max_steps) + 1):
            f, r = self.step(
                [next(forget) for _ in range(t.grad_accumulation)], [next(retain) for _ in range(t.grad_accumulation)]
            )
            log.forget_nll.append(round(f, 6))
            log.retain_nll.append(round(r, 6))
            log.steps = step
            if every and step % every == 0 and step < t.max_steps:
                self.model.eval()
                accuracy = stop_check()
                self.model.train()
                log.checks.append({"step": step, "accuracy": accuracy})
                if accuracy < stop_below:
                    log.stopped_early = True
                    break
        self.model.eval()
        log.seconds = round(time.perf_counter() - start, 3)
        return log


def _norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The joint L2 norm of a gradient over all adapter parameters (a tiny floor keeps a zero gradient finite)."""
    return torch.sqrt(sum((g.float() ** 2).sum() for g in grads)).clamp(min=1e-12)
