"""The profile key reference in device_profiles/README.md, generated from the profile schema.

Every key of a profile file, its type, limits, default and meaning come from the pydantic
models of gateway/profiles/schema.py and their Field descriptions, so the guide cannot drift
from what `gateway profiles validate` accepts (the configuration reference does the same for
the settings, gateway/operations/config_reference.py). `gateway profiles reference --readme
device_profiles/README.md` rewrites the text between the two markers, and
tests/test_profile_reference.py fails when the committed text differs from the models.

The schema is walked from `ProfileSpec`: one table per model, under the dotted path where it
first appears (`decode.layout`, `tags.<name>`, `decode.variants[]`). A model used in several
places (a binary layout inside `json`, `binary`, `chirpstack_v4` and `tts_v3`) gets one table,
and the other places point to it. Each member of a tagged union (`decode`, told apart by
`format`) gets its own table.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.operations.generated_docs import Markers
from gateway.profiles.schema import ProfileSpec

MARKERS = Markers(
    "<!-- BEGIN profile reference: generated from gateway/profiles/schema.py by `gateway "
    "profiles reference --readme device_profiles/README.md`; do not edit by hand "
    "(tests/test_profile_reference.py checks it) -->",
    "<!-- END profile reference -->",
)

_OPTIONAL = " (optional)"
_FACTORY_DEFAULTS: dict[object, str] = {list: "`[]`", dict: "`{}`"}
_LIMIT_SYMBOLS: dict[type[Any], tuple[str, str]] = {
    annotated_types.Ge: ("ge", "≥"),
    annotated_types.Gt: ("gt", ">"),
    annotated_types.Le: ("le", "≤"),
    annotated_types.Lt: ("lt", "<"),
    annotated_types.MinLen: ("min_length", "at least"),
    annotated_types.MaxLen: ("max_length", "at most"),
}


@dataclass(frozen=True, slots=True)
class Table:
    """One model's keys, under the path where the model first appears in a profile file."""

    path: str  # e.g. "decode.layout"; "" for the top level of the file
    model: type[BaseModel]
    intro: str  # the description of the key that holds this table
    tag: str = ""  # for a member of a tagged union: "format: csv"

    @property
    def title(self) -> str:
        where = f"`{self.path}`" if self.path else "top level"
        return f"{where} with `{self.tag}`" if self.tag else where


def render_profile_reference(root: type[BaseModel] = ProfileSpec) -> str:
    """The generated text between the markers: one table per model, top level first."""
    tables = list(_tables(root))
    titles = {table.model: table.title for table in tables}
    parts: list[str] = []
    for table in tables:
        parts.append(f"### {table.title}\n")
        if table.intro:
            parts.append(_cell(table.intro) + "\n")
        parts.append("| key | type | default | meaning |")
        parts.append("|---|---|---|---|")
        for name, info in table.model.model_fields.items():
            kind = _type(info.annotation, titles)
            optional = kind.endswith(_OPTIONAL)
            kind = kind.removesuffix(_OPTIONAL) + _limits(info.metadata) + (", optional" * optional)
            parts.append(
                f"| `{name}` | {kind} | {_default(info)} | {_cell(info.description or '')} |"
            )
        parts.append("")
    return "\n".join(parts)


def write_profile_reference(readme: Path) -> bool:
    """Rewrite the reference inside `readme`; True if the file changed."""
    return MARKERS.write(readme, render_profile_reference())


def _tables(root: type[BaseModel]) -> Iterator[Table]:
    """Depth first from the top of the file, each model once, where it is first met."""
    seen: set[type[BaseModel]] = set()
    pending = [Table("", root, "")]
    while pending:
        table = pending.pop(0)
        if table.model in seen:
            continue
        seen.add(table.model)
        yield table
        nested = [
            found
            for name, info in table.model.model_fields.items()
            for found in _nested(_join(table.path, name), info)
        ]
        pending[0:0] = nested  # depth first: a table's children before its next sibling


def _nested(path: str, info: FieldInfo) -> Iterator[Table]:
    """The tables a key leads to: its model, each model of a union, or a map's or list's."""
    intro = info.description or ""
    discriminator = info.discriminator if isinstance(info.discriminator, str) else None
    for suffix, model in _models_in(info.annotation):
        tag = _tag(model, discriminator) if discriminator else ""
        yield Table(path + suffix, model, intro, tag)


def _models_in(annotation: Any, suffix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(path suffix, model) for every model a key's type holds: `.<name>` inside a map, `[]`
    inside a list."""
    if _is_model(annotation):
        yield suffix, annotation
        return
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        yield from _models_in(args[0], suffix)
    elif origin is dict:
        yield from _models_in(args[1], f"{suffix}.<name>")
    elif origin is list:
        yield from _models_in(args[0], f"{suffix}[]")
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg, suffix)


def _tag(model: type[BaseModel], discriminator: str) -> str:
    annotation = model.model_fields[discriminator].annotation
    values = get_args(annotation) if get_origin(annotation) is Literal else ()
    return f"{discriminator}: {values[0]}" if values else ""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type(annotation: Any, titles: dict[type[BaseModel], str]) -> str:
    if _is_model(annotation):
        return f"table, see {titles[annotation]}"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0], titles) + _limits(args[1:])
    if origin is Literal:
        return " \\| ".join(f"`{json.dumps(arg)}`" for arg in args)
    if origin in (Union, types.UnionType):
        return _union_type(args, titles)
    if origin in (list, dict):
        inner = _type(args[-1], titles)
        return f"list of {inner}" if origin is list else f"map of name to {inner}"
    return str(getattr(annotation, "__name__", annotation))


def _union_type(args: tuple[Any, ...], titles: dict[type[BaseModel], str]) -> str:
    members = [arg for arg in args if arg is not type(None)]
    optional = _OPTIONAL if type(None) in args else ""
    if len(members) > 1 and all(_is_model(member) for member in members):
        return "table, one of the tables below by its tag" + optional  # a tagged union
    return " \\| ".join(_type(member, titles) for member in members) + optional


def _limits(metadata: Any) -> str:
    found = [
        f"{symbol} {getattr(item, attribute)}"
        for item in metadata
        for kind, (attribute, symbol) in _LIMIT_SYMBOLS.items()
        if isinstance(item, kind)
    ]
    return f" ({', '.join(found)})" if found else ""


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:  # an empty list or map, or a table of defaults
        return _FACTORY_DEFAULTS.get(info.default_factory, "all defaults")
    if info.is_required():
        return "required"
    shown = "none" if info.default is None else f"`{json.dumps(info.default, default=str)}`"
    return _cell(shown)


def _cell(text: str) -> str:
    """Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
