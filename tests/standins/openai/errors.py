"""OpenAI's error envelope and the stand-in's catalogue of error answers.

Every non-2xx answer has the shape OpenAI uses::

    {"error": {"message": str, "type": str, "param": str | None, "code": str | None}}

The status codes match what the SDK maps to exception classes (400 BadRequestError,
401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429
RateLimitError, >=500 InternalServerError).  Messages copy OpenAI's wording where it is
documented (see ``../shared/docs`` from the project root) or was observed in real
answers; the others are marked "stand-in wording".
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

TRAINING_NOT_AVAILABLE_MESSAGE = (
    "OpenAI is winding down the fine-tuning platform and your organization is no longer "
    "able to create new fine-tuning training jobs. Learn more "
    "https://developers.openai.com/api/docs/deprecations#update-to-openais-self-serve-fine-tuning"
)


class APIErrorResponse(Exception):
    """Raised by handlers; turned into an OpenAI-shaped JSON error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
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
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_response(self) -> web.Response:
        """An aiohttp response carrying this error."""
        return web.Response(
            status=self.status,
            body=json.dumps(self.body()).encode(),
            content_type="application/json",
            headers=self.headers,
        )


def bad_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> APIErrorResponse:
    """400 ``invalid_request_error`` (the SDK raises ``BadRequestError``)."""
    return APIErrorResponse(400, message, param=param, code=code)


def not_found(
    message: str, *, param: str | None = None, code: str | None = None
) -> APIErrorResponse:
    """404 ``invalid_request_error`` (``NotFoundError``)."""
    return APIErrorResponse(404, message, param=param, code=code)


def unrecognized_arguments(names: list[str]) -> APIErrorResponse:
    """400 for body keys OpenAI does not know: ``Unrecognized request argument
    supplied: foo`` (``param``/``code`` null, as OpenAI answers; the plural form for
    several keys is stand-in wording)."""
    if len(names) == 1:
        return bad_request(f"Unrecognized request argument supplied: {names[0]}")
    return bad_request(f"Unrecognized request arguments supplied: {', '.join(names)}")


def image_input_not_supported(message_index: int, part_index: int) -> APIErrorResponse:
    """400 for an ``image_url`` content part sent to a text-only model (OpenAI's wording)."""
    return bad_request(
        "Invalid content type. image_url is only supported by certain models.",
        param=f"messages.[{message_index}].content.[{part_index}].type",
    )


def model_deprecated(model: str) -> APIErrorResponse:
    """OpenAI's answer for a model that was shut down (404 ``model_not_found``).

    Wording as OpenAI answered after earlier shutdowns (e.g. ``text-davinci-003``,
    2024): ``The model `X` has been deprecated, learn more here:
    https://platform.openai.com/docs/deprecations``.
    """
    return APIErrorResponse(
        404,
        f"The model `{model}` has been deprecated, learn more here: "
        "https://platform.openai.com/docs/deprecations",
        code="model_not_found",
    )


def model_not_found(model: str) -> APIErrorResponse:
    """OpenAI's answer for an unknown or deleted model (404 ``model_not_found``)."""
    return APIErrorResponse(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def invalid_url(method: str, path: str) -> APIErrorResponse:
    """OpenAI's answer for a path it does not serve: ``Invalid URL (GET /v1/nope)``."""
    return APIErrorResponse(404, f"Invalid URL ({method} {path})")


def missing_api_key() -> APIErrorResponse:
    """401 when no ``Authorization: Bearer`` header is sent (OpenAI's wording)."""
    return APIErrorResponse(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
        "as the password field (with blank username) if you're accessing the API from your "
        "browser and are prompted for a username and password. You can obtain an API key "
        "from https://platform.openai.com/account/api-keys.",
    )


def mask_key(key: str) -> str:
    """Mask a key the way OpenAI echoes it back: first 3 and last 4 characters kept."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def invalid_api_key(key: str) -> APIErrorResponse:
    """401 ``invalid_api_key`` for a key the stand-in was not configured with."""
    return APIErrorResponse(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def training_not_available() -> APIErrorResponse:
    """403 ``training_not_available``: the wind-down answer to ``jobs.create``.

    Body copied from the project log quoted in ``providers.md`` §1.1.
    """
    return APIErrorResponse(403, TRAINING_NOT_AVAILABLE_MESSAGE, code="training_not_available")


def rate_limited(retry_after_ms: int, *, detail: str = "requests") -> APIErrorResponse:
    """429 ``rate_limit_exceeded`` with ``retry-after-ms`` and ``retry-after`` headers."""
    seconds = max(1, -(-retry_after_ms // 1000))
    return APIErrorResponse(
        429,
        "Rate limit reached for requests in organization org-standin on requests per min "
        f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {retry_after_ms}ms.",
        type=detail,
        code="rate_limit_exceeded",
        headers={
            "retry-after-ms": str(retry_after_ms),
            "retry-after": str(seconds),
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{retry_after_ms}ms",
        },
    )


def server_error(status: int = 500) -> APIErrorResponse:
    """5xx ``server_error`` (``InternalServerError`` in the SDK)."""
    if status == 503:
        message = "The engine is currently overloaded, please try again later."
    else:
        message = "The server had an error while processing your request. Sorry about that!"
    return APIErrorResponse(status, message, type="server_error")


def too_large(size: int, limit: int, status: int = 413) -> APIErrorResponse:
    """File above the configured size cap (stand-in wording; 413 or 400)."""
    return APIErrorResponse(
        status,
        f"File is too large: {size} bytes. The maximum file size is {limit} bytes.",
        param="file",
        code="file_too_large",
    )
