"""Training small causal LMs on a CPU: a word-level tokenizer, an OLMo3-architecture model, and one AdamW loop.

The testbed pretrains its model with it and fine-tunes the query ("instruct") variant; the unlearning stage can reuse
``fit`` with its own batches. Models are saved in HF format; the pretraining optimizer state goes beside the model as
``optimizer.pt`` (``torch.optim`` state dict, one param group in ``named_parameters`` order, each entry also naming
its parameter), which is what bergson's ``--optimizer_state`` reads as TrackStar's second-moment normalizer V.
"""

from __future__ import annotations

import math
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch

from ...artifacts import atomic_path
from ...errors import ProvenanceError

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "[UNK]"


def train_word_tokenizer(texts: Iterable[str]):
    """A word-level tokenizer over whitespace-separated words (the testbed's text is pre-spaced), as a
    ``PreTrainedTokenizerFast``. Every word of the corpus gets its own id, so no benchmark word is split or unknown."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=[PAD, EOS, UNK], min_frequency=1))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, bos_token=EOS, unk_token=UNK
    )


def tiny_olmo3(tokenizer, layers: int, hidden: int, heads: int, mlp: int, max_positions: int, seed: int):
    """A freshly initialised OLMo3 model sized for a CPU (full attention in every layer, tied embeddings)."""
    from transformers import Olmo3Config, Olmo3ForCausalLM

    config = Olmo3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        layer_types=["full_attention"] * layers,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return Olmo3ForCausalLM(config)


# ----------------------------------------------------------------------------------------------- batches
def packed_batches(
    documents: Sequence[Sequence[int]],
    eos_id: int,
    context: int,
    batch_size: int,
    generator: torch.Generator,
    unlearned: Sequence[bool] | None = None,
) -> Iterator[dict]:
    """Endless pretraining batches: each epoch shuffles the documents, joins them with EOS and cuts the stream into
    ``context``-token rows (the last partial row is dropped). Every epoch has the same number of rows, so a corpus
    shorter than one batch is refused here instead of looping forever.

    ``unlearned`` (one flag per document): those documents' tokens (and their EOS) get no loss, and every batch is
    otherwise the same, in the same order: training without them, all else equal (the counterfactual retrains)."""
    rows_per_epoch = sum(len(d) + 1 for d in documents) // context
    if rows_per_epoch < batch_size:
        raise ProvenanceError(
            f"the corpus holds {rows_per_epoch} rows of {context} tokens: fewer tokens than one "
            f"batch of {batch_size} rows",
            "lower world.pretraining.batch_size or "
            "world.model.context, or generate more documents (world.corpus.documents)",
        )
    while True:
        order = torch.randperm(len(documents), generator=generator).tolist()
        stream = torch.tensor([t for i in order for t in (*documents[i], eos_id)], dtype=torch.long)
        rows = stream[: len(stream) // context * context].view(-1, context)
        labels = rows
        if unlearned is not None:
            kept = torch.tensor([not unlearned[i] for i in order for _ in range(len(documents[i]) + 1)])
            labels = rows.masked_fill(~kept[: rows.numel()].view_as(rows), -100)
        for start in range(0, len(rows) - batch_size + 1, batch_size):
            yield {"input_ids": rows[start : start + batch_size], "labels": labels[start : start + batch_size]}


def packed_steps_per_epoch(documents: Sequence[Sequence[int]], context: int, batch_size: int) -> int:
    tokens = sum(len(d) + 1 for d in documents)
    return max(1, tokens // context // batch_size)


def answer_batches(
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    generator: torch.Generator,
) -> Iterator[dict]:
    """Endless fine-tuning batches of prompt + answer, the loss on the answer tokens only (instruction tuning)."""
    while True:
        order = torch.randperm(len(prompts), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            rows = [(list(prompts[i]) + list(answers[i]), len(prompts[i])) for i in order[start : start + batch_size]]
            width = max(len(ids) for ids, _ in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, (ids, n_prompt) in enumerate(rows):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                labels[r, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
                mask[r, : len(ids)] = 1
            yield {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


# ----------------------------------------------------------------------------------------------- training
def fit(
    model,
    batches: Iterator[dict],
    steps: int,
    lr: float,
    warmup: float,
    weight_decay: float,
    max_grad_norm: float = 1.0,
    on_step: Callable[[int, torch.optim.Optimizer], None] | None = None,
) -> tuple[torch.optim.Optimizer, list[float]]:
    """``steps`` AdamW updates (one param group, linear warm-up then cosine decay); returns the optimizer (its state is
    TrackStar's V) and the loss of every step. ``on_step(step, optimizer)`` runs after each update (1-based step),
    e.g. to save checkpoints."""
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(warmup * steps), steps)
    model.train()
    losses = []
    for step, batch in zip(range(1, steps + 1), batches):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, optimizer)
    model.eval()
    return optimizer, losses


def save_model(model, tokenizer, out_dir: str | Path, optimizer: torch.optim.Optimizer | None = None) -> Path:
    """HF model folder (safetensors + config + tokenizer), with ``optimizer.pt`` when an optimizer is given."""
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if optimizer is not None:
        state = optimizer.state_dict()
        names = [name for name, _ in model.named_parameters()]
        if len(state["param_groups"]) != 1 or len(state["param_groups"][0]["params"]) != len(names):
            raise ValueError("optimizer.pt must hold one param group over model.named_parameters() in order")
        for index, entry in state["state"].items():
            entry["param_name"] = names[index]
        with atomic_path(out_dir / "optimizer.pt") as tmp:
            torch.save(state, tmp)
    return out_dir
