"""Discord's documented limits, enforced the way Discord enforces them.

Violations are collected in a :class:`~.errors.FormErrors` and raised as
``400 {"code": 50035, "message": "Invalid Form Body", "errors": {...}}``
with per-field ``_errors`` entries (``BASE_TYPE_MAX_LENGTH`` etc.), so
discord.py raises ``HTTPException`` with ``code == 50035`` and the field
path in its text.  Limits (https://discord.com/developers/docs/resources/message
and .../interactions/message-components):

* content <= 2000 characters; a message needs content, an embed, a
  component, a sticker, a poll or an attachment (50006 otherwise);
* <= 10 embeds; title 256, description 4096, 25 fields, field name 256,
  field value 1024, footer 2048, author name 256, 6000 characters in total;
* <= 5 action rows, <= 5 buttons or 1 select per row, ``custom_id`` <= 100,
  button label <= 80, select options 1..25;
* modals: title <= 45, 1..5 top-level components, text input label <= 45,
  ``min_length``/``max_length``/``value`` <= 4000;
* autocomplete: <= 25 choices, names <= 100 characters;
* components v2 (message flag ``IS_COMPONENTS_V2``, ``1 << 15``): ``content``,
  ``embeds``, ``poll`` and ``sticker_ids`` cannot be used, up to 40
  components in total (nested ones included) instead of 5 action rows;
  without the flag only action rows (type 1) may be top-level components.
"""

from __future__ import annotations

from typing import Any

from .errors import EMPTY_MESSAGE, DiscordHTTPError, FormErrors

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_NAME_MAX = 256
ROWS_MAX = 5
ROW_BUTTONS_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
SELECT_OPTIONS_MAX = 25
MODAL_TITLE_MAX = 45
MODAL_ROWS_MAX = 5
TEXT_INPUT_LABEL_MAX = 45
TEXT_INPUT_MAX = 4000
CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
V2_COMPONENTS_MAX = 40
LEGACY_FIELDS = ("content", "embeds", "poll", "sticker_ids")


def _len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def embed_size(embed: dict[str, Any]) -> int:
    """Characters counted towards the 6000 total (title, description, field
    names/values, footer text, author name)."""
    total = _len(embed.get("title")) + _len(embed.get("description"))
    for f in embed.get("fields") or []:
        total += _len(f.get("name")) + _len(f.get("value"))
    total += _len((embed.get("footer") or {}).get("text"))
    total += _len((embed.get("author") or {}).get("name"))
    return total


def check_embeds(embeds: list[dict[str, Any]], errors: FormErrors) -> None:
    if len(embeds) > EMBEDS_MAX:
        errors.max_length(["embeds"], EMBEDS_MAX)
        return
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            if _len(embed.get(key)) > limit:
                errors.max_length(["embeds", i, key], limit)
        fields = embed.get("fields") or []
        if len(fields) > FIELDS_MAX:
            errors.max_length(["embeds", i, "fields"], FIELDS_MAX)
        for j, f in enumerate(fields):
            if _len(f.get("name")) > FIELD_NAME_MAX:
                errors.max_length(["embeds", i, "fields", j, "name"], FIELD_NAME_MAX)
            if _len(f.get("value")) > FIELD_VALUE_MAX:
                errors.max_length(["embeds", i, "fields", j, "value"], FIELD_VALUE_MAX)
        if _len((embed.get("footer") or {}).get("text")) > FOOTER_MAX:
            errors.max_length(["embeds", i, "footer", "text"], FOOTER_MAX)
        if _len((embed.get("author") or {}).get("name")) > AUTHOR_NAME_MAX:
            errors.max_length(["embeds", i, "author", "name"], AUTHOR_NAME_MAX)
        total += embed_size(embed)
    if total > EMBED_TOTAL_MAX:
        errors.add(
            ["embeds"],
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}",
        )


def _check_custom_id(comp: dict[str, Any], path: list[str | int], errors: FormErrors) -> None:
    if _len(comp.get("custom_id")) > CUSTOM_ID_MAX:
        errors.max_length([*path, "custom_id"], CUSTOM_ID_MAX)


def count_components(comps: list[Any]) -> int:
    """Components in a tree (children, ``accessory`` and ``component`` included)."""
    total = 0
    for comp in comps:
        if not isinstance(comp, dict):
            continue
        total += 1 + count_components(comp.get("components") or [])
        total += count_components([comp.get(k) for k in ("accessory", "component") if comp.get(k)])
    return total


def legacy_field_error(errors: FormErrors, key: str) -> None:
    errors.add(
        [key],
        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
        f"The '{key}' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
    )


def check_components(
    rows: list[dict[str, Any]], errors: FormErrors, *, components_v2: bool = False
) -> None:
    """Message components: classic action rows of buttons or one select; with
    ``components_v2`` also layouts (limit-checked by total count only)."""
    if components_v2:
        if count_components(rows) > V2_COMPONENTS_MAX:
            errors.max_length(["components"], V2_COMPONENTS_MAX)
    elif len(rows) > ROWS_MAX:
        errors.max_length(["components"], ROWS_MAX)
    for i, row in enumerate(rows):
        if row.get("type") != 1:
            if not components_v2:
                errors.add(
                    ["components", i],
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
            continue  # components v2 layouts: not limit-checked here
        children = row.get("components") or []
        selects = [c for c in children if c.get("type") in (3, 5, 6, 7, 8)]
        if len(children) > ROW_BUTTONS_MAX or (selects and len(children) > 1):
            errors.add(
                ["components", i, "components"],
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        for j, comp in enumerate(children):
            path: list[str | int] = ["components", i, "components", j]
            _check_custom_id(comp, path, errors)
            if comp.get("type") == 2:
                if _len(comp.get("label")) > BUTTON_LABEL_MAX:
                    errors.max_length([*path, "label"], BUTTON_LABEL_MAX)
                is_link = comp.get("style") == 5
                if is_link == bool(comp.get("custom_id")) and comp.get("style") != 6:
                    errors.add(
                        path,
                        "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED"
                        if not is_link
                        else "BUTTON_COMPONENT_URL_REQUIRED",
                        "A custom id is required" if not is_link else "A url is required",
                    )
            if comp.get("type") == 3:
                options = comp.get("options") or []
                if not 1 <= len(options) <= SELECT_OPTIONS_MAX:
                    errors.add(
                        [*path, "options"],
                        "BASE_TYPE_BAD_LENGTH",
                        f"Must be between 1 and {SELECT_OPTIONS_MAX} in length.",
                    )


def check_message(
    body: dict[str, Any],
    *,
    has_files: bool = False,
    partial: bool = False,
    components_v2: bool = False,
) -> None:
    """Validate a create/edit message body; raises 50035 or 50006."""
    errors = FormErrors()
    content = body.get("content")
    if content is not None and len(str(content)) > CONTENT_MAX:
        errors.max_length(["content"], CONTENT_MAX)
    embeds = body.get("embeds") or []
    check_embeds(embeds, errors)
    if components_v2:
        for key in LEGACY_FIELDS:
            if body.get(key):
                legacy_field_error(errors, key)
    check_components(body.get("components") or [], errors, components_v2=components_v2)
    errors.raise_if_any()
    if partial:
        return
    if not (
        content
        or embeds
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or has_files
        or body.get("attachments")
    ):
        raise DiscordHTTPError(400, EMPTY_MESSAGE, "Cannot send an empty message")


def check_modal(data: dict[str, Any]) -> None:
    """Validate the ``data`` of a MODAL (type 9) interaction callback."""
    errors = FormErrors()
    if _len(data.get("title")) > MODAL_TITLE_MAX:
        errors.max_length(["data", "title"], MODAL_TITLE_MAX)
    if _len(data.get("custom_id")) > CUSTOM_ID_MAX:
        errors.max_length(["data", "custom_id"], CUSTOM_ID_MAX)
    rows = data.get("components") or []
    if not 1 <= len(rows) <= MODAL_ROWS_MAX:
        errors.add(
            ["data", "components"],
            "BASE_TYPE_BAD_LENGTH",
            f"Must be between 1 and {MODAL_ROWS_MAX} in length.",
        )
    for i, row in enumerate(rows):
        for j, comp in modal_inputs(row):
            path: list[str | int] = [
                "data",
                "components",
                i,
                "components" if j >= 0 else "component",
            ]
            if j >= 0:
                path.append(j)
            _check_custom_id(comp, path, errors)
            if comp.get("type") != 4:
                continue
            if _len(comp.get("label")) > TEXT_INPUT_LABEL_MAX:
                errors.max_length([*path, "label"], TEXT_INPUT_LABEL_MAX)
            for key in ("min_length", "max_length"):
                if isinstance(comp.get(key), int) and comp[key] > TEXT_INPUT_MAX:
                    errors.add(
                        [*path, key],
                        "NUMBER_TYPE_MAX",
                        f"int value should be less than or equal to {TEXT_INPUT_MAX}.",
                    )
            if _len(comp.get("value")) > TEXT_INPUT_MAX:
                errors.max_length([*path, "value"], TEXT_INPUT_MAX)
    errors.raise_if_any()


def modal_inputs(row: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Interactive children of a modal row: ``(index, component)`` for action
    rows, ``(-1, component)`` for a Label (type 18) wrapping one component."""
    if row.get("type") == 1:
        return list(enumerate(row.get("components") or []))
    if row.get("type") == 18 and row.get("component"):
        comp = dict(row["component"])
        comp.setdefault("label", row.get("label"))
        return [(-1, comp)]
    return []


def check_choices(data: dict[str, Any]) -> None:
    """Validate an APPLICATION_COMMAND_AUTOCOMPLETE_RESULT (type 8) body."""
    errors = FormErrors()
    choices = data.get("choices") or []
    if len(choices) > CHOICES_MAX:
        errors.max_length(["data", "choices"], CHOICES_MAX)
    for i, choice in enumerate(choices):
        if _len(choice.get("name")) > CHOICE_NAME_MAX:
            errors.max_length(["data", "choices", i, "name"], CHOICE_NAME_MAX)
    errors.raise_if_any()
