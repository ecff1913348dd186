"""The configuration reference (docs/configuration.md), generated from the settings model.

Every key, its type, limits, default and meaning come from gateway/config.py's pydantic fields,
so the page cannot drift from what the gateway accepts: `gateway config reference --out
docs/configuration.md` rewrites it, and tests/test_config_reference.py fails when the committed
page differs from what the model says.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway.config import GatewaySettings

_HEADER = """\
# Configuration reference

<!-- Generated from gateway/config.py by `gateway config reference --out docs/configuration.md`;
do not edit by hand (tests/test_config_reference.py checks that it is in sync). -->

One TOML file (`gateway run --config FILE`; the example with comments is
[`gateway.example.toml`](../gateway.example.toml)). Any key can be set or overridden by an
environment variable `GATEWAY_<SECTION>__<KEY>` (nested tables: `GATEWAY_MQTT__TLS__CA_FILE`),
which wins over the file. `gateway check-config --config FILE` validates a file exactly as
start-up does; `gateway doctor --config FILE` also tries the broker, InfluxDB and the state
directory. Secrets (`password`, `token`) print as `**********`; prefer their `*_file` keys.
"""

_LIMITS = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
)


def render_reference() -> str:
    """The whole page: one table per section, in the order of GatewaySettings."""
    parts = [_HEADER.rstrip("\n")]
    for title, model in _sections(GatewaySettings, ()):
        parts.append(f"\n## `[{title}]`\n\n{_model_doc(model)}".rstrip("\n") + "\n")
        parts.append("| key | type | default | environment variable | meaning |")
        parts.append("|---|---|---|---|---|")
        for name, info in model.model_fields.items():
            if section_model(info) is not None:
                continue  # a nested table, described in its own section
            env = "GATEWAY_" + "__".join([*title.split("."), name]).upper()
            parts.append(
                f"| `{name}` | {_type(info.annotation)}{_limits(info)} | {_default(info)} | "
                f"`{env}` | {_cell(info.description or '')} |"
            )
    return "\n".join(parts) + "\n"


def write_reference(path: Path) -> bool:
    """Write the page; True if it changed."""
    text = render_reference()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _sections(
    model: type[BaseModel], prefix: tuple[str, ...]
) -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted table name, its model) depth first; a table of named tables (`dict[str, Model]`,
    e.g. [tenants.<name>]) appears once, as `tenants.<name>`."""
    for name, info in model.model_fields.items():
        section = section_model(info)
        if section is None:
            continue
        named = not _is_model(info.annotation)
        path = (*prefix, name, f"<{name.removesuffix('s')}>") if named else (*prefix, name)
        yield ".".join(path), section
        yield from _sections(section, path)


def section_model(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a nested table, or of each table in a table of named tables."""
    annotation = info.annotation
    args = get_args(annotation)
    if get_origin(annotation) is dict and args:
        annotation = args[-1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_doc(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return f"{doc}\n\n" if doc and not doc.startswith(("A base class", "Usage docs")) else ""


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{arg!r}`".replace("'", '"') for arg in args)
    if origin in (Union, types.UnionType):
        named = [_type(arg) for arg in args if arg is not type(None)]
        return " \\| ".join(named) + (" (optional)" if type(None) in args else "")
    if origin in (list, dict):
        return f"{origin.__name__} of " + ", ".join(_type(arg) for arg in args)
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _limits(info: FieldInfo) -> str:
    found = []
    for item in info.metadata:
        for kind, attribute, symbol in _LIMITS:
            if isinstance(item, kind):
                found.append(f"{symbol} {getattr(item, attribute)}")
    return f" ({', '.join(found)})" if found else ""


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        if info.default_factory is list:
            return "`[]`"
        return "`{}`" if info.default_factory is dict else "computed at start"
    if info.default is PydanticUndefined:
        return "required"
    return _value(info.default)


def _value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str | Path):
        return f'`"{value}"`'
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
