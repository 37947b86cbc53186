"""``/v1/moderations``: deterministic, keyword-driven moderation results.

Emulated OpenAI behaviour: one result per input (a string, a list of strings, or a
list of ``text``/``image_url`` parts), each with the 13 ``categories`` booleans,
``category_scores`` and ``category_applied_input_types``; ``flagged`` when any
category is.  A category is flagged when the text contains one of its trigger words
(``server.moderation.terms``, editable by tests); scores are 0.9 / 0.0001.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .errors import bad_request
from .params import MODERATION_PARAMS, check_known

CATEGORIES = (
    "hate",
    "hate/threatening",
    "harassment",
    "harassment/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
IMAGE_CAPABLE = {
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "violence",
    "violence/graphic",
}


def default_terms() -> dict[str, list[str]]:
    """Trigger words per category (deliberately tiny and explicit)."""
    return {
        "violence": ["kill", "stab"],
        "harassment": ["idiot", "loser"],
        "hate": ["hateword"],
        "self-harm": ["hurt myself"],
        "illicit": ["make a bomb"],
    }


class Moderator:
    """Classifies inputs with :attr:`terms`."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self.terms = default_terms()

    def classify(self, body: Any) -> dict[str, Any]:
        """The ``CreateModerationResponse`` for a request body."""
        check_known(body, MODERATION_PARAMS)
        if not isinstance(body, dict) or "input" not in body:
            raise bad_request(
                "Missing required parameter: 'input'.",
                param="input",
                code="missing_required_parameter",
            )
        raw = body["input"]
        inputs: list[tuple[str, bool]]  # (text, is_image)
        if isinstance(raw, str):
            inputs = [(raw, False)]
        elif isinstance(raw, list) and all(isinstance(i, str) for i in raw):
            inputs = [(i, False) for i in raw]
        elif isinstance(raw, list):
            text = " ".join(
                p.get("text", "") for p in raw if isinstance(p, dict) and p.get("type") == "text"
            )
            has_image = any(isinstance(p, dict) and p.get("type") == "image_url" for p in raw)
            inputs = [(text, has_image)]
        else:
            raise bad_request("Invalid type for 'input'.", param="input", code="invalid_type")
        model = body.get("model") or "omni-moderation-latest"
        if model == "omni-moderation-latest":
            model = "omni-moderation-2024-09-26"
        return {
            "id": self._state.ids.new("modr-", 29),
            "model": model,
            "results": [self._result(text, image) for text, image in inputs],
        }

    def _result(self, text: str, has_image: bool) -> dict[str, Any]:
        lowered = text.lower()
        hits = {c for c, words in self.terms.items() for w in words if w.lower() in lowered}
        categories: dict[str, Any] = {c: c in hits for c in CATEGORIES}
        applied = {}
        for c in CATEGORIES:
            kinds = ["text"]
            if has_image and c in IMAGE_CAPABLE:
                kinds.append("image")
            applied[c] = kinds
        return {
            "flagged": bool(hits),
            "categories": categories,
            "category_scores": {c: 0.9 if c in hits else 0.0001 for c in CATEGORIES},
            "category_applied_input_types": applied,
        }


def routes(state: Any) -> list[web.RouteDef]:
    """aiohttp route for ``/v1/moderations``; ``state`` is the :class:`OpenAIStandin`."""

    async def create(request: web.Request) -> web.Response:
        body = await state.read_json(request)
        with state.lock:
            return state.json(state.moderation.classify(body))

    return [web.post("/v1/moderations", create)]
