"""YAML with source positions, so every error can name file, line, column and field.

PyYAML's node graph carries marks; we build plain Python values from it and keep
a map from each value's path to where it was written. Pydantic's error `loc`
is then looked up in that map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.core.errors import SourceError, ValidationFailed

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Located:
    """A YAML document as plain data plus the position of every key and item."""

    path: str
    data: Any
    positions: dict[Path_, tuple[int, int]]

    def where(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """Position of the deepest written prefix of loc (a missing field points at its parent)."""
        key = tuple(loc)
        while key and key not in self.positions:
            key = key[:-1]
        return self.positions.get(key, (1, 1))

    def error(self, loc: Sequence[str | int], message: str) -> SourceError:
        line, col = self.where(loc)
        return SourceError(self.path, line, col, dotted(loc), message)


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse(path: str, text: str) -> Located:
    """Parse one YAML document; syntax errors and duplicate keys become SourceErrors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ValidationFailed(
            [SourceError(path, line, col, "", f"invalid YAML: {exc.problem or exc}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationFailed([SourceError(path, 1, 1, "", f"invalid YAML: {exc}")]) from None
    positions: dict[Path_, tuple[int, int]] = {}
    errors: list[SourceError] = []
    if node is None:
        return Located(path, {}, {(): (1, 1)})
    positions[()] = _mark(node)
    constructor = yaml.SafeLoader("")  # reuses PyYAML's scalar resolution (ints, bools...)

    def build(n: yaml.Node, at: Path_) -> Any:
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node)
                child = (*at, key)
                if key in out:
                    line, col = _mark(key_node)
                    errors.append(SourceError(path, line, col, dotted(child), "duplicate key"))
                    continue
                positions[child] = _mark(key_node)
                out[key] = build(value_node, child)
            return out
        if isinstance(n, yaml.SequenceNode):
            items = []
            for i, item in enumerate(n.value):
                positions[(*at, i)] = _mark(item)
                items.append(build(item, (*at, i)))
            return items
        return constructor.construct_object(n)

    data = build(node, ())
    if errors:
        raise ValidationFailed(errors)
    return Located(path, data, positions)


def validate(
    doc: Located,
    model: type[M],
    *,
    prepare: Callable[[Any], Any] | None = None,
) -> M:
    """Validate doc against model; every pydantic error becomes a located SourceError."""
    data = prepare(doc.data) if prepare else doc.data
    if not isinstance(data, dict):
        raise ValidationFailed([doc.error((), "expected a mapping at the top of the file")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            errors.append(doc.error(_user_loc(loc), _message(err)))
        raise ValidationFailed(errors) from None


def _user_loc(loc: Path_) -> Path_:
    # Pydantic inserts union and validator tags (`function-after[...]`, `literal[...]`)
    # into loc; only the keys and indexes the user wrote belong in the message.
    return tuple(p for p in loc if isinstance(p, int) or "[" not in p)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see `agentplane schema`)"
    msg: str = err["msg"].removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else kind
