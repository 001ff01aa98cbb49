"""Released checkpoints: each run's LoRA adapter with a model card, and loading it back onto the right base model.

An adapter folder is what ``peft.PeftModel.from_pretrained`` reads (``adapter_config.json``,
``adapter_model.safetensors``) plus ``README.md``, the model card (Hugging Face front matter: ``base_model``,
``library_name: peft``; then the base model and its revision, the forget set's manifest hash, the hyperparameters and
the evaluation results) and ``provenance.json``, the same facts for programs. ``load_adapter`` refuses a base model
other than the one the adapter was trained on: LoRA deltas on another model's weights load without complaint when
the shapes agree, and mean nothing.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from ...artifacts import read_json, sha256_file, write_json, write_text
from ...errors import ProvenanceError
from ...models import WEIGHT_PATTERNS

CARD, PROVENANCE = "README.md", "provenance.json"


@cache
def base_identity(name_or_path: str, revision: str | None = None) -> dict:
    """What identifies a base model: a local folder by the sha256 of its weights (a moved or copied folder keeps
    it; another checkpoint of the same architecture does not), a hub model by id and revision."""
    path = Path(name_or_path)
    if not path.is_dir():
        return {"model": name_or_path, "revision": revision, "weights_sha256": None}
    weights = [f for pattern in WEIGHT_PATTERNS for f in sorted(path.glob(pattern))]
    digest = hashlib.sha256("".join(f"{f.name} {sha256_file(f)}\n" for f in weights).encode()).hexdigest()
    return {"model": path.name, "revision": revision, "weights_sha256": digest}


def save_adapter(
    model, folder: str | Path, *, base: dict, forget_set: dict, hyperparameters: dict, results: pd.DataFrame, steps: int
) -> Path:
    """Save a peft model's adapter into ``folder`` with its model card and ``provenance.json``."""
    folder = Path(folder)
    model.save_pretrained(folder)
    provenance = {
        "base_model": base,
        "forget_set": forget_set,
        "hyperparameters": hyperparameters,
        "steps": steps,
        "results": results.to_dict("records"),
    }
    write_json(folder / PROVENANCE, provenance)
    write_text(folder / CARD, model_card(provenance))
    return folder


def model_card(provenance: dict) -> str:
    base, forget = provenance["base_model"], provenance["forget_set"]
    front = {
        "base_model": base["model"],
        "library_name": "peft",
        "tags": ["lora", "unlearning", "capability-provenance"],
    }
    results = pd.DataFrame(provenance["results"])
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# Unlearning adapter `{forget['name']}`",
        "",
        "A LoRA adapter trained to forget one document set of the study *Where Does Social Reasoning Come From? "
        "Capability Provenance in Language Models* (stage 05, `provenance_lib.stages.unlearning`). Load it with "
        "`provenance_lib.stages.unlearning.load_adapter(folder, base_model)`, which checks the base model, or "
        "`peft.PeftModel.from_pretrained(base_model, folder)`.",
        "",
        "## Base model",
        "",
        f"- model: `{base['model']}`",
        f"- revision: `{base['revision']}`",
        f"- weights sha256: `{base['weights_sha256']}`",
        "",
        "## Forget set",
        "",
        f"- {forget['kind']} set, construction `{forget['construction']}`, benchmark `{forget.get('benchmark')}`, "
        f"topic `{forget.get('topic')}`, bin `{forget.get('bin')}`, seed {forget['seed']}",
        f"- {forget['size']} documents ({forget['requested']} requested), {forget['tokens']} tokens",
        f"- manifest sha256 (ids sorted, one per line): `{forget['sha256']}` — the ids are in the stage's "
        "`forget_sets/ids.parquet`; no text is released",
        "",
        f"## Training ({provenance['steps']} steps)",
        "",
        "```json",
        json.dumps(provenance["hyperparameters"], indent=2, sort_keys=True),
        "```",
        "",
        "## Evaluation (lm-eval)",
        "",
        results.to_markdown(index=False) if len(results) else "(none)",
        "",
    ]
    return "\n".join(lines)


def load_adapter(folder: str | Path, base_model, revision: str | None = None):
    """``base_model`` (a loaded model, whose ``name_or_path`` is checked) with the adapter in ``folder`` applied, in
    eval mode; a clear error when the adapter was trained on another base model."""
    from peft import PeftModel

    folder = Path(folder)
    if not (folder / PROVENANCE).is_file():
        raise ProvenanceError(
            f"{folder} is not an unlearning adapter ({PROVENANCE} missing)", "pass a folder under the stage's adapters/"
        )
    trained_on = read_json(folder / PROVENANCE)["base_model"]
    given = base_identity(str(base_model.name_or_path), revision)
    if not _same_model(trained_on, given):
        raise ProvenanceError(
            f"adapter {folder.name} was trained on base model {_describe(trained_on)}, not on {_describe(given)}",
            "load the base model it names (its model card lists model, revision and weights sha256)",
        )
    return PeftModel.from_pretrained(base_model, folder).eval()


def _same_model(a: dict, b: dict) -> bool:
    if a["weights_sha256"] or b["weights_sha256"]:
        return a["weights_sha256"] == b["weights_sha256"]
    return (a["model"], a["revision"]) == (b["model"], b["revision"])


def _describe(identity: dict) -> str:
    sha = identity["weights_sha256"]
    return f"{identity['model']}@{identity['revision']}" + (f" (weights sha256 {sha[:12]})" if sha else "")
