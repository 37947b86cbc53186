"""Discord's JSON error responses.

Discord answers failed REST calls with ``{"code": <int>, "message": <str>}``
and, for invalid bodies (code 50035 "Invalid Form Body"), a nested
``errors`` tree whose leaves are ``{"_errors": [{"code", "message"}]}``::

    {"code": 50035, "message": "Invalid Form Body",
     "errors": {"embeds": {"0": {"title": {"_errors": [
         {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]}}}}}

discord.py turns the status into ``Forbidden`` (403), ``NotFound`` (404),
``DiscordServerError`` (5xx) or ``HTTPException`` and fills ``.code`` and
``.text`` from this body (``http.py`` ``HTTPException.__init__``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Codes from https://discord.com/developers/docs/topics/opcodes-and-status-codes
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
UNKNOWN_EMOJI = 10014
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
UNKNOWN_APPLICATION_COMMAND = 10063
CANNOT_EDIT_OTHER_USERS_MESSAGE = 50005
EMPTY_MESSAGE = 50006
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035
INTERACTION_ALREADY_ACKNOWLEDGED = 40060


class DiscordHTTPError(Exception):
    """Raised by REST handlers; rendered by the server as Discord's JSON error."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def not_found(code: int, what: str) -> DiscordHTTPError:
    """``404 {"message": "Unknown Message", "code": 10008}`` and friends."""
    return DiscordHTTPError(404, code, f"Unknown {what}")


def missing_permissions() -> DiscordHTTPError:
    return DiscordHTTPError(403, MISSING_PERMISSIONS, "Missing Permissions")


def missing_access() -> DiscordHTTPError:
    return DiscordHTTPError(403, MISSING_ACCESS, "Missing Access")


class FormErrors:
    """Collects field errors and renders Discord's nested ``errors`` tree.

    ``add(("embeds", 0, "title"), "BASE_TYPE_MAX_LENGTH", "Must be 256 or
    fewer in length.")`` produces ``{"embeds": {"0": {"title": {"_errors":
    [...]}}}}``; an empty path attaches the error to the root.
    """

    def __init__(self) -> None:
        self._tree: dict[str, Any] = {}
        self.flat: list[tuple[str, str, str]] = []

    def add(self, path: Iterable[str | int], code: str, message: str) -> None:
        node = self._tree
        parts = [str(p) for p in path]
        for part in parts:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
        self.flat.append((".".join(parts), code, message))

    def max_length(self, path: Iterable[str | int], limit: int) -> None:
        self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def __bool__(self) -> bool:
        return bool(self._tree)

    def raise_if_any(self) -> None:
        if self._tree:
            raise DiscordHTTPError(400, INVALID_FORM_BODY, "Invalid Form Body", self._tree)
