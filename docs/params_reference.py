"""Write the params reference page from the pydantic models that validate `params/*.yaml` (the source of truth:
a knob documented here is one the loader accepts, with the default and description the code has)."""

import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from provenance_lib.params import StudyParams, Validation


def _models(annotation) -> list[type[BaseModel]]:
    """The params sections an annotation holds (a section, an optional one, or a union of kinds)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in typing.get_args(annotation) for model in _models(argument)]


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if typing.get_origin(annotation) is None else None
    return text or str(annotation).replace("typing.", "")


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    return "`null`" if value is None else f"`{value}`"


def _rows(model: type[BaseModel], prefix: str, seen: frozenset) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        sections = [section for section in _models(field.annotation) if section not in seen]
        if sections:
            for section in sections:
                kind = section.model_fields.get("kind") or section.model_fields.get("source")
                label = f" ({typing.get_args(kind.annotation)[0]})" if kind and typing.get_args(kind.annotation) else ""
                summary = " ".join((section.__doc__ or "").split("\n\n")[0].split()).replace("|", "\\|")
                rows.append(f"| **`{prefix}{name}`**{label} | section | | {summary} |")
                rows += _rows(section, f"{prefix}{name}.", seen | {section})
        else:
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            type_name = _type_name(field.annotation).replace("|", "\\|")
            rows.append(f"| `{prefix}{name}` | `{type_name}` | {_default(field)} | {description} |")
    return rows


def write(path: Path) -> None:
    header = "| key | type | default | what it does |\n|---|---|---|---|\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Params reference\n\nEvery key a study's params file accepts (`provenance_lib/params/`, generated from "
        "the pydantic models when the site is built). Unknown keys are errors; `-p key.path=value` overrides any "
        "of them.\n\n## A study (`params/<study>.yaml`)\n\n"
        + header
        + "\n".join(_rows(StudyParams, "", frozenset()))
        + "\n\n## Known answers (`params/validation.yaml`)\n\n"
        + header
        + "\n".join(_rows(Validation, "", frozenset()))
        + "\n"
    )
