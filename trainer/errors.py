"""OpenAI-shaped API errors and the FastAPI handlers that render them.

Every non-2xx answer has OpenAI's envelope::

    {"error": {"message": str, "type": str, "param": str | None, "code": str | None}}

and a status the SDK maps to its exception classes (400 ``BadRequestError``, 401
``AuthenticationError``, 403 ``PermissionDeniedError``, 404 ``NotFoundError``, 413 and 421
``APIStatusError``, 429 ``RateLimitError``, 500 ``InternalServerError``). Wording copies
OpenAI's where it is known. Answers are rendered by
:class:`trainer.api.responses.SafeJSONResponse`, so no message can fail to encode.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainer.api.responses import SafeJSONResponse

log = logging.getLogger(__name__)


class APIError(Exception):
    """Raised anywhere in request handling; rendered as an OpenAI error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        }

    def response(self) -> JSONResponse:
        # The SDK retries 409/429/5xx unless told not to; our errors are final unless
        # ``headers`` say otherwise (a full chat queue answers 429 with ``retry-after``).
        headers = {"x-should-retry": "false", **self.headers}
        return SafeJSONResponse(self.body(), status_code=self.status, headers=headers)


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """400 ``invalid_request_error``."""
    return APIError(400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """404 ``invalid_request_error``."""
    return APIError(404, message, param=param, code=code)


INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)


def invalid_json() -> APIError:
    """OpenAI's answer for a body that is not JSON: 400, ``param`` and ``code`` null."""
    return bad_request(INVALID_JSON_MESSAGE)


def unsupported_parameter(param: str, detail: str = "is not supported by this server") -> APIError:
    """A parameter this server would otherwise ignore: refused rather than silently dropped."""
    return bad_request(f"Unsupported parameter: '{param}' {detail}.", param=param, code="unsupported_parameter")


def model_not_found(model: str) -> APIError:
    """OpenAI's answer for an unknown or deleted model."""
    return APIError(
        404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
    )


def file_not_found(file_id: str) -> APIError:
    return not_found(f"No such File object: {file_id}", param="id")


def job_not_found(job_id: str) -> APIError:
    return not_found(f"Could not find fine-tuning job {job_id}", param="fine_tuning_job_id")


def too_long(param: str, limit: int, got: int) -> APIError:
    """OpenAI's wording for a string over its maximum length."""
    return bad_request(
        f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
        f"but got a string with length {got} instead.",
        param=param,
        code="string_above_max_length",
    )


def missing_api_key() -> APIError:
    return APIError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def mask_key(key: str) -> str:
    """Mask a key the way OpenAI echoes it: first 3 and last 4 characters kept."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def invalid_api_key(key: str) -> APIError:
    return APIError(401, f"Incorrect API key provided: {mask_key(key)}.", code="invalid_api_key")


def body_too_large(limit: int) -> APIError:
    """413 for a request body over the route's limit (checked before the body is read)."""
    return APIError(
        413, f"Request body too large: this route accepts at most {limit} bytes.", code="request_too_large"
    )


def host_not_allowed(host: str) -> APIError:
    """421 for a ``Host`` header the server does not answer to (DNS rebinding)."""
    shown = host if len(host) <= 100 else host[:100] + "…"
    return APIError(
        421,
        f"This server does not answer to the host {shown!r}. Add the name to TRAINER_ALLOWED_HOSTS "
        "(--allowed-hosts) if clients should reach it that way.",
        code="host_not_allowed",
    )


def cross_site_request() -> APIError:
    """403 for a request a browser sent on behalf of another site."""
    return APIError(
        403,
        "Cross-site browser requests are refused: call this API from a program, not from a web page.",
        code="cross_site_request",
    )


def chat_queue_full(retry_after: int) -> APIError:
    """429 when the chat queue is full; the SDK waits ``retry-after`` seconds and retries."""
    return APIError(
        429,
        "Too many chat completions are running or waiting on this server. Please retry shortly.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": str(retry_after), "x-should-retry": "true"},
    )


def _param_from_loc(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return exc.response()


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "Invalid request"}
    if first.get("type") == "json_invalid":
        return invalid_json().response()
    param = _param_from_loc(tuple(first.get("loc", ())))
    message = f"Invalid '{param}': {first.get('msg')}" if param else str(first.get("msg"))
    return bad_request(message, param=param).response()


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return not_found(f"Invalid URL ({request.method} {request.url.path})").response()
    if exc.status_code == 405:
        return APIError(405, f"Invalid method for URL ({request.method} {request.url.path})").response()
    if exc.status_code == 413:
        return APIError(413, str(exc.detail), code="request_too_large").response()
    return APIError(exc.status_code, str(exc.detail)).response()


async def _unexpected_handler(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return APIError(500, "The server had an error while processing your request.", type="server_error").response()


def install_error_handlers(app: FastAPI) -> None:
    """Render every error raised in ``app`` in OpenAI's shape."""
    app.add_exception_handler(APIError, _api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
