"""OpenAPI 3.1 documents built from a list of operations and their msgspec types.

An HTTP front door declares what each route takes and gives (``Operation``: method, path,
summary, request type, response type, the error statuses it may answer, its path and query
parameters, whether it needs the bearer token); ``document`` turns the list into the
OpenAPI document it serves at ``/openapi.json``. The component schemas come from
``msgspec.json.schema_components`` over the very types the route handlers decode and
encode, so the document cannot drift from the validation: a field's type, bounds and
whether it is required are written once, on the type.

Types are anything msgspec describes: ``msgspec.Struct`` classes, dataclasses,
``Annotated`` aliases with ``msgspec.Meta``. A response given as a ``dict`` is used as the
schema as it is (for a body the route writes by hand, e.g. Prometheus text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agent.problem import PROBLEM_JSON

REF_TEMPLATE = "#/components/schemas/{name}"
"""Where ``$ref`` points: the document's own ``components.schemas``."""

JSON = "application/json"

CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'the bearer challenge (RFC 6750): Bearer realm="..." with '
        'error="invalid_token" when the token sent is not valid',
        "schema": {"type": "string"},
    }
}
"""The header every 401 answer carries."""
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
"""The header a 429 answer carries."""
UTF8_BODY = (
    "JSON text in UTF-8 (RFC 8259): a body that is not valid UTF-8, or starts with a byte "
    "order mark, or holds a NUL byte (UTF-16 or UTF-32) is refused, 400 bad_json."
)
"""What every JSON request body's description says first (both servers refuse the rest
before reading the JSON)."""


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter (``schema``: its JSON schema; a path parameter
    is always required)."""

    name: str
    location: str = "path"
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = True
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.location,
            "required": self.required or self.location == "path",
            "schema": dict(self.schema),
        }
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class Operation:
    """One route. ``request``: the JSON body's type (None: no body); ``response``: the
    type of the ``status`` answer's JSON body (None: any JSON object; a ``dict``: that
    schema as it is); ``errors``: status -> description of the error answers (their body
    is the document's error type); ``params``: parameters beyond the ``{name}`` segments
    of ``path`` (those are added as required strings unless given here); ``auth``: the
    route needs the document's security scheme (False: public, ``security: []``)."""

    method: str
    path: str
    summary: str
    request: Any = None
    response: Any = None
    errors: Mapping[int, str] = field(default_factory=dict)
    params: Sequence[Param] = ()
    auth: bool = True
    status: int = 200
    description: str = "ok"
    media_type: str = JSON
    request_description: str = ""


def query_params(model: type[msgspec.Struct]) -> list[Param]:
    """The OpenAPI query parameters of a query model: one per field, its schema the
    field's, required when the field has no default."""
    (ref,), components = msgspec.json.schema_components([model], ref_template="{name}")
    schema = components[ref["$ref"]]
    required = set(schema.get("required", ()))
    return [
        Param(name, "query", prop, required=name in required)
        for name, prop in schema["properties"].items()
    ]


def _path_params(op: Operation) -> list[dict[str, Any]]:
    given = {p.name for p in op.params}
    out = [Param(name).as_dict() for name in re.findall(r"{(\w+)}", op.path) if name not in given]
    return out + [p.as_dict() for p in op.params]


def document(
    operations: Iterable[Operation],
    *,
    title: str,
    version: str,
    description: str = "",
    error: Any = None,
    security: Mapping[str, Any] | None = None,
    security_name: str = "bearer",
    extra_types: Iterable[Any] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``. ``error``: the type of every error
    answer's body (None: any JSON object), served as ``application/problem+json`` (a 401
    with its ``WWW-Authenticate`` challenge, a 429 with ``Retry-After``); ``security``:
    the security scheme the operations with ``auth`` need (default: HTTP bearer), named
    ``security_name``; ``extra_types``: more types to list among the component schemas.
    Every JSON request body's description begins with ``UTF8_BODY``."""
    ops = list(operations)
    types: list[Any] = []

    def typed(value: Any) -> bool:
        return value is not None and not isinstance(value, dict)

    for op in ops:
        types.extend(t for t in (op.request, op.response) if typed(t))
    if typed(error):
        types.append(error)
    types.extend(extra_types)
    unique = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(unique, ref_template=REF_TEMPLATE)
    schema_of = dict(zip(unique, refs, strict=True))

    def body_schema(value: Any) -> dict[str, Any]:
        if value is None:
            return {"type": "object"}
        if isinstance(value, dict):
            return value
        return dict(schema_of[value])

    error_schema = body_schema(error)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        answer: dict[str, Any] = {"description": op.description}
        if op.media_type == JSON:
            answer["content"] = {JSON: {"schema": body_schema(op.response)}}
        elif op.response is not None:
            answer["content"] = {op.media_type: {"schema": body_schema(op.response)}}
        responses: dict[str, Any] = {str(op.status): answer}
        for status, what in sorted(op.errors.items()):
            refusal: dict[str, Any] = {
                "description": what,
                "content": {PROBLEM_JSON: {"schema": error_schema}},
            }
            if status in (401, 429):
                refusal["headers"] = CHALLENGE if status == 401 else RETRY_AFTER
            responses[str(status)] = refusal
        entry: dict[str, Any] = {
            "summary": op.summary,
            "security": [{security_name: []}] if op.auth else [],
            "responses": responses,
        }
        params = _path_params(op)
        if params:
            entry["parameters"] = params
        if op.request is not None:
            entry["requestBody"] = {
                "required": True,
                "description": " ".join(filter(None, (UTF8_BODY, op.request_description))),
                "content": {JSON: {"schema": body_schema(op.request)}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": "3.1.0",
        "info": info,
        "components": {
            "securitySchemes": {
                security_name: dict(security or {"type": "http", "scheme": "bearer"})
            },
            "schemas": components,
        },
        "paths": paths,
    }
