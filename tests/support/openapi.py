"""GitHub's own OpenAPI description, as a request router and a validator for the test double.

The spec is OpenAPI 3.0, whose schemas are JSON Schema draft 4 plus `nullable`.
We rewrite `nullable` into plain JSON Schema once, then hand schemas to
`jsonschema` with the whole document as one resource, so `#/components/...`
references resolve exactly as written upstream. openapi-core was measured
too (see the test double's report): it needs 12 s to validate this spec unless
that is switched off, and brings five more packages for what fits in here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.support.shared import GITHUB

SPEC = Path(
    os.environ.get("AGENTPLANE_GITHUB_OPENAPI", str(GITHUB / "openapi-api.github.com.json"))
)
ROOT = "urn:github:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Error bodies for statuses an operation does not list (401 on /app, injected
# 502s): GitHub sends its usual error object, which the spec names basic-error.
BASIC_ERROR = "#/components/schemas/basic-error"


def _to_json_schema(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 `nullable: true` into JSON Schema, everywhere below `node`."""
    if isinstance(node, list):
        return [_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is not True:
        return out
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    # allOf/oneOf/$ref with nullable: the null branch has to sit beside the whole thing.
    return {"anyOf": [out, {"type": "null"}]}


def _load_converted(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    cache = Path(tempfile.gettempdir()) / f"agentplane-github-openapi-{digest[:16]}.pickle"
    if cache.exists():
        try:
            doc: dict[str, Any] = pickle.loads(cache.read_bytes())
            return doc
        except Exception:  # a torn write from a parallel run: rebuild it
            pass
    doc = json.loads(raw)
    # Examples are data, not schemas: leave them byte-for-byte as upstream wrote them.
    examples = doc["components"].pop("examples")
    doc = _to_json_schema(doc)
    doc["components"]["examples"] = examples
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(cache)
    return doc


_FORMATS = jsonschema.FormatChecker(formats=())


def _date_time(value: object) -> bool:
    # PyGithub parses these; RFC 3339 needs the T and a zone.
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


_FORMATS.checks("date-time", raises=ValueError)(_date_time)


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    pointer: str  # where its schema lives in the document, for the shared validator
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    spec: Mapping[str, Any]
    regex: re.Pattern[str]
    literal_segments: int
    parameters: tuple[Param, ...]


@dataclass(frozen=True)
class Match:
    operation: Operation
    path_params: dict[str, str] = field(default_factory=dict)


class OpenAPI:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry: Registry[Any] = Registry().with_resource(ROOT, DRAFT4.create_resource(doc))
        self.operations: list[Operation] = []
        for template, item in doc["paths"].items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    self.operations.append(self._operation(method, template, item[method], shared))
        self._validators: dict[str, jsonschema.Draft4Validator] = {}

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref: str) -> Any:
        node: Any = self.doc
        for part in ref.removeprefix("#/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def _operation(
        self, method: str, template: str, op: dict[str, Any], shared: list[Any]
    ) -> Operation:
        path_ptr = "#/paths/" + _escape(template)
        located = [(f"{path_ptr}/parameters/{i}", p) for i, p in enumerate(shared)]
        located += [
            (f"{path_ptr}/{method}/parameters/{i}", p)
            for i, p in enumerate(op.get("parameters", []))
        ]
        params: dict[tuple[str, str], Param] = {}
        for ptr, param in located:
            while "$ref" in param:
                ptr, param = param["$ref"], self.pointer(param["$ref"])
            params[(param["name"], param["in"])] = Param(param["name"], param["in"], ptr, param)
        pattern, literal = "", 0
        for segment in template.strip("/").split("/"):
            name = re.fullmatch(r"\{(\w+)\}", segment)
            if not name:
                pattern += "/" + re.escape(segment)
                literal += 1
                continue
            found = params.get((name[1], "path"))
            # x-multi-segment marks the few parameters (file paths, refs) that may hold slashes.
            body = ".+" if found and found.spec.get("x-multi-segment") else "[^/]+"
            pattern += f"/(?P<{name[1]}>{body})"
        return Operation(
            method=method.upper(),
            template=template,
            operation_id=op["operationId"],
            spec=op,
            regex=re.compile(pattern or "/"),
            literal_segments=literal,
            parameters=tuple(params.values()),
        )

    def match(self, method: str, path: str) -> Match | None:
        """The operation for `method path`; literal segments beat templated ones, as on GitHub."""
        hits = [
            (op, m)
            for op in self.operations
            if op.method == method.upper() and (m := op.regex.fullmatch(path))
        ]
        if not hits:
            return None
        op, m = max(hits, key=lambda hit: hit[0].literal_segments)
        return Match(op, {k: v for k, v in m.groupdict().items()})

    def path_known(self, path: str) -> bool:
        return any(op.regex.fullmatch(path) for op in self.operations)

    def operation(self, method: str, template: str) -> Operation:
        for op in self.operations:
            if op.method == method.upper() and op.template == template:
                return op
        raise KeyError(f"{method} {template} is not in GitHub's OpenAPI description")

    def validator(self, ref: str) -> jsonschema.Draft4Validator:
        if ref not in self._validators:
            self._validators[ref] = jsonschema.Draft4Validator(
                {"$ref": f"{ROOT}{ref}"}, registry=self.registry, format_checker=_FORMATS
            )
        return self._validators[ref]

    def errors(self, ref: str, value: Any, where: str) -> list[str]:
        found = sorted(self.validator(ref).iter_errors(value), key=lambda e: list(e.absolute_path))
        return [_describe(where, e) for e in found[:5]]

    # -- requests ------------------------------------------------------------

    def validate_request(
        self, match: Match, query: Mapping[str, list[str]], body: Any, has_body: bool
    ) -> list[str]:
        op = match.operation
        errors: list[str] = []
        base = _ref_of(op)
        for param in op.parameters:
            name, where = param.name, param.location
            if where == "path":
                values = [match.path_params[name]]
            elif where == "query":
                values = query.get(name, [])
            else:
                continue  # headers are GitHub's business (Accept, API version), not the bot's
            if not values:
                if param.spec.get("required"):
                    errors.append(f"{where} parameter {name!r} is required")
                continue
            ref = f"{param.pointer}/schema"
            for raw in values:
                errors += self.errors(ref, _coerce(self.pointer(ref), raw), f"{where} {name}")
        known = {p.name for p in op.parameters if p.location == "query"}
        errors += [
            f"query parameter {q!r} is not in the operation" for q in query if q not in known
        ]
        errors += self._validate_body(op, base, body, has_body)
        return errors

    def _validate_body(self, op: Operation, base: str, body: Any, has_body: bool) -> list[str]:
        spec = op.spec.get("requestBody")
        if spec is None:
            return (
                ["the operation takes no request body"]
                if has_body and body not in ({}, None)
                else []
            )
        spec = self.resolve(spec)
        if not has_body:
            return ["request body is required"] if spec.get("required") else []
        if "application/json" not in spec.get("content", {}):
            return []
        ref = f"{base}/requestBody"
        if "$ref" in op.spec["requestBody"]:
            ref = op.spec["requestBody"]["$ref"]
        return self.errors(f"{ref}/content/application~1json/schema", body, "request body")

    # -- responses -----------------------------------------------------------

    def response_ref(self, match: Match, status: int) -> str | None:
        """The schema a response with `status` must follow; None means no body at all."""
        op = match.operation
        responses = op.spec["responses"]
        key = (
            str(status)
            if str(status) in responses
            else "default"
            if "default" in responses
            else None
        )
        if key is None:
            return BASIC_ERROR if status >= 400 else None
        base = f"{_ref_of(op)}/responses/{key}"
        response = responses[key]
        if "$ref" in response:
            base = response["$ref"]
            response = self.resolve(response)
        content = response.get("content", {})
        if "application/json" in content:
            return f"{base}/content/application~1json/schema"
        if content:
            ctype = next(iter(content))
            return f"{base}/content/{ctype.replace('/', '~1')}/schema"
        return None

    def validate_response(self, match: Match, status: int, body: Any) -> list[str]:
        op = match.operation
        if str(status) not in op.spec["responses"] and status < 400 and status not in (304,):
            return [f"status {status} is not a documented response of {op.operation_id}"]
        ref = self.response_ref(match, status)
        if ref is None:
            return [] if body is None else [f"status {status} of {op.operation_id} has no body"]
        return self.errors(ref, body, "response body")

    def example(self, name: str) -> Any:
        """A deep copy of `components.examples[name].value`: callers fill it with state."""
        return json.loads(json.dumps(self.doc["components"]["examples"][name]["value"]))


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _ref_of(op: Operation) -> str:
    return f"#/paths/{_escape(op.template)}/{op.method.lower()}"


def _coerce(schema: Any, raw: str) -> Any:
    """Query and path values arrive as strings; the spec types them."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    kinds = kind if isinstance(kind, list) else [kind]
    try:
        if "integer" in kinds:
            return int(raw)
        if "number" in kinds:
            return float(raw)
    except ValueError:
        return raw
    if "boolean" in kinds and raw in ("true", "false"):
        return raw == "true"
    return raw


def _describe(where: str, error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p!r}]" for p in error.absolute_path)
    message = error.message if len(error.message) < 300 else error.message[:300] + "..."
    if error.context:  # anyOf/oneOf: say why the closest branch failed
        best = jsonschema.exceptions.best_match(error.context)
        message += f" (closest: {best.message[:200]})"
    return f"{where}{path}: {message}"


@functools.cache
def load(path: Path = SPEC) -> OpenAPI:
    """The spec, parsed once per test session (the double and the tests share it)."""
    return OpenAPI(_load_converted(path))
