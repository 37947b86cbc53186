"""Check recorded OpenAI exchanges against the official OpenAPI spec and the SDK's types.

``../shared/specs/openai-openapi.yaml`` (from the project root; OpenAPI 3.1 with some 3.0 leftovers) is
parsed once per process and normalised for JSON Schema 2020-12:

* ``nullable: true`` becomes ``anyOf: [<schema>, {"type": "null"}]``;
* boolean ``exclusiveMinimum``/``exclusiveMaximum`` (3.0 style) become numeric ones;
* ``discriminator`` is dropped (``oneOf`` still decides).

:func:`exchange_violations` resolves the operation by method + path template and
validates the request body (JSON or multipart), the query parameters, the response body
(the declared schema for 2xx, ``ErrorResponse`` for errors) and each SSE chunk of a
streamed answer; it then parses the answer with the SDK's own pydantic type
(``FineTuningJob``, ``FileObject``…) in pydantic strict mode and reports fields the SDK
does not know.

Request bodies are checked only when the stand-in accepted them (2xx): a test may send
an invalid request on purpose to see the 400.

:data:`KNOWN_DEVIATIONS` lists the few places where OpenAI's real answers (which the
stand-in copies) differ from the spec; each entry says why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import referencing
import yaml
from referencing.jsonschema import DRAFT202012

#: ``$OPENAI_OPENAPI_SPEC`` or ``<checkout>/../shared/specs/openai-openapi.yaml`` (as conftest finds tiktoken).
SPEC_PATH = Path(
    os.environ.get(
        "OPENAI_OPENAPI_SPEC",
        Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml",
    )
)
SPEC_URI = "urn:openai-openapi"


# -- loading -------------------------------------------------------------------
def _normalise(node: Any) -> Any:
    if isinstance(node, list):
        return [_normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _normalise(v) for k, v in node.items() if k not in ("discriminator", "nullable")}
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(flag) is True and bound in out:
            out[flag] = out.pop(bound)
        elif out.get(flag) is False:
            del out[flag]
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=1)
def load_spec(path: str = str(SPEC_PATH)) -> dict[str, Any]:
    """The parsed, normalised spec (cached for the process)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        return _normalise(yaml.load(fh, Loader=loader))  # noqa: S506 - safe loader


@lru_cache(maxsize=1)
def _registry() -> referencing.Registry:
    resource = referencing.Resource(contents=load_spec(), specification=DRAFT202012)
    return referencing.Registry().with_resource(SPEC_URI, resource)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@lru_cache(maxsize=512)
def validator_for(pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``pointer`` (``#/components/schemas/FineTuningJob``)."""
    return jsonschema.Draft202012Validator({"$ref": SPEC_URI + pointer}, registry=_registry())


@dataclass(frozen=True)
class Operation:
    """A spec operation matched for a request."""

    method: str
    template: str
    operation_id: str
    pointer: str  # JSON pointer to the operation object

    def get(self) -> dict[str, Any]:
        """The operation object."""
        node: Any = load_spec()
        for part in self.pointer[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


@lru_cache(maxsize=1)
def _templates() -> list[tuple[re.Pattern[str], str]]:
    paths = load_spec()["paths"]
    compiled = [
        (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"), t) for t in paths
    ]
    # literal segments first: /files/{id}/content beats a hypothetical /files/{a}/{b}
    return sorted(compiled, key=lambda pair: pair[1].count("{"))


def find_operation(method: str, path: str) -> Operation | None:
    """The spec operation for ``METHOD /v1/...`` (``None`` if the spec has none)."""
    if path.startswith("/v1/"):
        path = path[3:]
    paths = load_spec()["paths"]
    for pattern, template in _templates():
        if pattern.match(path) and method.lower() in paths[template]:
            op = paths[template][method.lower()]
            return Operation(
                method.upper(),
                template,
                op["operationId"],
                _pointer("paths", template, method.lower()),
            )
    return None


# -- known differences between the spec and OpenAI's real answers -------------------
@dataclass(frozen=True)
class Deviation:
    """A tolerated spec violation and the reason it is real OpenAI behaviour."""

    reason: str
    matches: Callable[[str, str, jsonschema.ValidationError], bool]


KNOWN_DEVIATIONS: list[Deviation] = [
    Deviation(
        "Paused jobs report status 'paused' (the spec's own example for POST .../pause shows it; "
        "the FineTuningJob enum lacks it).",
        lambda op, where, err: (
            where.startswith("response")
            and err.instance == "paused"
            and list(err.absolute_path)[-1:] == ["status"]
        ),
    ),
    Deviation(
        "An empty list has first_id/last_id null (the spec types them as string).",
        lambda op, where, err: (
            where.startswith("response")
            and err.instance is None
            and list(err.absolute_path)[-1:] in (["first_id"], ["last_id"])
        ),
    ),
]


def _errors(pointer: str, instance: Any, where: str, op_id: str) -> list[str]:
    out = []
    for err in validator_for(pointer).iter_errors(instance):
        if any(dev.matches(op_id, where, err) for dev in KNOWN_DEVIATIONS):
            continue
        location = "/".join(str(p) for p in err.absolute_path) or "<root>"
        out.append(f"{where} {location}: {err.message[:300]}")
    return out


# -- requests ------------------------------------------------------------------------
def _coerce(value: str, schema: dict[str, Any]) -> Any:
    types = schema.get("type")
    candidates = types if isinstance(types, list) else [types]
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        candidates.append(sub.get("type"))
    if "integer" in candidates and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "number" in candidates and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    if "boolean" in candidates and value in ("true", "false"):
        return value == "true"
    if "null" in candidates and value == "null":
        return None
    return value


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = load_spec()
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def query_violations(op: Operation, query: dict[str, str]) -> list[str]:
    """Query parameters not declared by the operation or not matching their schema."""
    params = [_resolve(p) for p in op.get().get("parameters", [])]
    declared = {p["name"]: p for p in params if p.get("in") == "query"}
    out: list[str] = []
    deep: dict[str, dict[str, str]] = {}
    for name, raw in query.items():
        match = re.fullmatch(r"(\w+)\[(.+)\]", name)
        if match and match.group(1) in declared:
            deep.setdefault(match.group(1), {})[match.group(2)] = raw
            continue
        if name not in declared:
            out.append(f"query parameter {name!r} is not declared for {op.operation_id}")
            continue
        schema = declared[name].get("schema", {})
        value = _coerce(raw, _resolve(schema) if "$ref" in schema else schema)
        for err in jsonschema.Draft202012Validator(schema, registry=_registry()).iter_errors(value):
            out.append(f"query {name}: {err.message}")
    for name, value in deep.items():
        schema = declared[name].get("schema", {})
        for err in jsonschema.Draft202012Validator(schema, registry=_registry()).iter_errors(value):
            out.append(f"query {name}: {err.message}")
    return out


def _form_to_object(form: dict[str, Any], schema_pointer: str) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in form.items():
        if isinstance(value, dict):  # a file part
            value = "<binary>"
        match = re.fullmatch(r"(\w+)\[(\w+)\]", name)
        if match:
            obj.setdefault(match.group(1), {})[match.group(2)] = _coerce(
                value, {"type": ["integer", "string"]}
            )
        else:
            obj[name] = value
    return obj


def request_violations(op: Operation, exchange: Any) -> list[str]:
    """Body and query problems of an accepted request."""
    out = query_violations(op, exchange.query)
    body = op.get().get("requestBody")
    if body is None:
        if exchange.body and exchange.method in ("GET", "DELETE"):
            out.append(f"{op.operation_id} takes no body but one was sent")
        return out
    content = _resolve(body).get("content", {})
    kind = exchange.content_type
    if kind not in content:
        return out + [
            f"request content type {kind!r} not accepted by {op.operation_id} ({list(content)})"
        ]
    pointer = op.pointer + _pointer("requestBody", "content", kind, "schema")[1:]
    if kind == "application/json":
        out += _errors(pointer, exchange.json, "request", op.operation_id)
    elif kind.startswith("multipart/"):
        out += _errors(
            pointer, _form_to_object(exchange.form or {}, pointer), "request", op.operation_id
        )
    return out


# -- responses -----------------------------------------------------------------------
def response_violations(op: Operation | None, exchange: Any) -> list[str]:
    """Problems with the answer: its schema, SSE chunks and error envelope."""
    if exchange.dropped or exchange.status is None:
        return []
    op_id = op.operation_id if op else "?"
    responses = op.get().get("responses", {}) if op else {}
    status_key = str(exchange.status) if str(exchange.status) in responses else "default"
    declared = responses.get(status_key)
    if not 200 <= exchange.status < 300:
        # Every error the spec declares (e.g. TooManyRequests) is an ErrorResponse.
        if exchange.response_json is None:
            return [f"error answer {exchange.status} is not JSON"]
        pointer = _pointer("components", "schemas", "ErrorResponse")
        return _errors(pointer, exchange.response_json, "response", op_id)
    if op is None:
        return [f"no spec operation for {exchange.method} {exchange.path}"]
    if declared is None:
        return [f"status {exchange.status} not declared for {op_id}"]
    content = _resolve(declared).get("content", {})
    base = op.pointer + _pointer("responses", status_key, "content")[1:]
    if exchange.sse is not None:
        if "text/event-stream" not in content:
            return [f"{op_id} does not stream"]
        out = []
        for index, chunk in enumerate(exchange.sse):
            out += _errors(
                base + "/text~1event-stream/schema", chunk, f"response sse[{index}]", op_id
            )
        if not exchange.sse_done:
            out.append("stream did not end with data: [DONE]")
        return out
    if exchange.response_json is not None and "application/json" in content:
        schema = content["application/json"].get("schema", {})
        if schema.get("type") == "string":  # file content: the spec models raw bytes as a string
            return []
        return _errors(
            base + "/application~1json/schema", exchange.response_json, "response", op_id
        )
    return []


# -- SDK types -----------------------------------------------------------------------
def _sdk_types() -> dict[str, tuple[type[pydantic.BaseModel], bool]]:
    from openai.types import FileDeleted, FileObject, Model, ModelDeleted, ModerationCreateResponse
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
    from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

    return {
        "createFile": (FileObject, False),
        "retrieveFile": (FileObject, False),
        "listFiles": (FileObject, True),
        "deleteFile": (FileDeleted, False),
        "createFineTuningJob": (FineTuningJob, False),
        "retrieveFineTuningJob": (FineTuningJob, False),
        "cancelFineTuningJob": (FineTuningJob, False),
        "pauseFineTuningJob": (FineTuningJob, False),
        "resumeFineTuningJob": (FineTuningJob, False),
        "listPaginatedFineTuningJobs": (FineTuningJob, True),
        "listFineTuningEvents": (FineTuningJobEvent, True),
        "listFineTuningJobCheckpoints": (FineTuningJobCheckpoint, True),
        "listModels": (Model, True),
        "retrieveModel": (Model, False),
        "deleteModel": (ModelDeleted, False),
        "createChatCompletion": (ChatCompletion, False),
        "createChatCompletionChunk": (ChatCompletionChunk, False),
        "createModeration": (ModerationCreateResponse, False),
    }


def _extras(model: Any, where: str) -> list[str]:
    out = []
    if isinstance(model, pydantic.BaseModel):
        for key in model.model_extra or {}:
            out.append(f"{where}.{key} is not a field of the SDK type {type(model).__name__}")
        for name in type(model).model_fields:
            out += _extras(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        for index, item in enumerate(model):
            out += _extras(item, f"{where}[{index}]")
    return out


def sdk_violations(op: Operation | None, exchange: Any) -> list[str]:
    """Parse a 2xx answer with the SDK's pydantic type; report failures and unknown fields."""
    if op is None or exchange.status is None or not 200 <= exchange.status < 300:
        return []
    types = _sdk_types()
    bodies: list[tuple[str, Any]] = []
    if exchange.sse is not None:
        sdk_type, _ = types["createChatCompletionChunk"]
        bodies = [(f"sse[{i}]", c) for i, c in enumerate(exchange.sse)]
        is_list = False
    elif op.operation_id in types and exchange.response_json is not None:
        sdk_type, is_list = types[op.operation_id]
        bodies = [("body", exchange.response_json)]
    else:
        return []
    out = []
    for where, body in bodies:
        items = (
            [(f"{where}.data[{i}]", x) for i, x in enumerate(body.get("data", []))]
            if is_list
            else [(where, body)]
        )
        for item_where, item in items:
            if item.get("status") == "paused":  # see KNOWN_DEVIATIONS
                item = {**item, "status": "running"}
            try:
                parsed = sdk_type.model_validate(item, strict=True)
            except pydantic.ValidationError as exc:
                out.append(f"{item_where} does not parse as {sdk_type.__name__}: {exc}")
                continue
            out += _extras(parsed, item_where)
    return out


# -- entry points ----------------------------------------------------------------------
def exchange_violations(exchange: Any) -> list[str]:
    """Every spec/SDK problem of one recorded exchange (empty list = conforms)."""
    op = find_operation(exchange.method, exchange.path)
    if op is None:
        # Only OpenAI's own "Invalid URL" 404 may be answered for paths outside the spec.
        if exchange.status == 404 and exchange.response_json is not None:
            return response_violations(None, exchange)
        return [f"no spec operation for {exchange.method} {exchange.path}"]
    out: list[str] = []
    if exchange.status is not None and 200 <= exchange.status < 300:
        out += request_violations(op, exchange)
    out += response_violations(op, exchange)
    out += sdk_violations(op, exchange)
    return out


def assert_exchanges_conform(exchanges: Iterable[Any]) -> int:
    """Raise ``AssertionError`` listing every violation; returns how many were checked."""
    problems: list[str] = []
    count = 0
    for exchange in exchanges:
        count += 1
        problems += [f"{exchange.describe()}: {p}" for p in exchange_violations(exchange)]
    if problems:
        raise AssertionError("OpenAI spec violations:\n  " + "\n  ".join(problems))
    return count
