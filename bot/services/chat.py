"""Answering members in chat channels: which model, which system prompt, which context.

No Discord here: the cog (:mod:`cogs.chat`) reads messages into :class:`ContextMessage`
(via :mod:`bot.client.chat_context`) and streams what :meth:`ChatService.prepare` plans.

Rules (issue 10, "Answering in channels"):

* **Channels.** Chat is enabled per channel; a thread follows its parent's setting. The
  enabled channels of a guild are read once and then kept in memory (every write goes
  through this service), so a message in a channel where chat is off costs no query.
* **Model.** The guild's active model (``/model use``), else the base model of the default
  dataset (or the server's only dataset), else the server's default base model, else the
  bot's; answers of a base model end with a one-line note saying so.
* **System prompt** (:func:`training_system_prompt`): the dataset's exactly when its policy
  put it into training. ``include``: the dataset's prompt. ``omit``: none. ``as_written``:
  the examples went into training as contributed, so the dataset's prompt was not put
  there by the policy; when every approved example carries one and the same system
  prompt, *that* prompt was trained on and is sent, otherwise none. The active model
  keeps the prompt computed when it was activated (the prompt its training file had).
* **Context** (:func:`build_conversation`): the messages given (a reply chain or the
  recent history, oldest first, the asking message last); the bot's own messages are the
  assistant's turns, everyone else's the user's; consecutive turns of one role are joined.
  The oldest turns are dropped until the conversation, counted with the model's own
  tokenizer, fits the model's context minus the room kept for the answer.
* **Limits** (:class:`ChatLimits`): a per-user cooldown and a per-channel cap on answers
  being written at once; a refused message gets one short notice per cooldown window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.dataset.errors import UserError
from bot.dataset.policy import SystemPromptPolicy
from bot.dataset.pricing import PriceCatalogue, UnknownModel
from bot.dataset.tokens import FALLBACK_ENCODING, encoding_for_model, get_counter
from bot.providers.errors import (
    ContextTooLong,
    ModelNotFound,
    ProviderError,
    RateLimited,
    Unavailable,
)
from bot.providers.types import ChatMessage
from storage.records import Dataset, ExampleStatus
from storage.store import Storage

DEFAULT_CONTEXT = 8192
"""The context assumed for a model the price catalogue does not know."""
MAX_ANSWER_TOKENS = 4096
"""The most tokens an answer may take (and the room kept for it in the context)."""
HISTORY_MESSAGES = 20
"""How many messages of a reply chain or of the recent history are read."""
COOLDOWN_SECONDS = 3.0
"""A member's messages answered at most once per this many seconds."""
CHANNEL_CONCURRENCY = 2
"""Answers written at once in one channel (a thread counts as its own channel)."""
NOTICE_SECONDS = 6.0
"""How long a cooldown or busy notice stays before it is deleted."""
MODEL_CHOICES_KEPT = 10_000
"""Guilds whose model choice is kept between answers."""

BASE_NOTE_PREFIX = "-# Answered by the base model"


class ConversationTooLong(UserError):
    """The asking message alone does not fit the model's context."""


@dataclass(frozen=True)
class ContextMessage:
    """One message of the context, as plain data."""

    author_id: int
    text: str
    from_bot: bool
    """Written by this bot (an answer): the assistant's turn."""


@dataclass(frozen=True)
class ModelChoice:
    """The model a guild chats with now."""

    model: str
    system_prompt: str | None
    fine_tuned: bool
    """False: a base model answers (the answer carries :attr:`note`)."""

    @property
    def note(self) -> str | None:
        if self.fine_tuned:
            return None
        return (
            f"{BASE_NOTE_PREFIX} `{self.model}`: no fine-tuned model is active in this "
            "server yet."
        )


@dataclass(frozen=True)
class ChatPlan:
    """What to send to the backend for one answer."""

    model: str
    system_prompt: str | None
    messages: list[ChatMessage]
    max_tokens: int
    note: str | None
    """A line to append to the answer (base-model note), or None."""
    dropped: int = 0
    """Context messages left out to fit the budget."""


# -- system prompt ----------------------------------------------------------------------


async def training_system_prompt(storage: Storage, dataset: Dataset) -> str | None:
    """The system prompt ``dataset``'s policy put into training (see the module docstring)."""
    policy = SystemPromptPolicy(dataset.policy)
    if policy is SystemPromptPolicy.INCLUDE:
        return dataset.system_prompt or None
    if policy is SystemPromptPolicy.OMIT:
        return None
    prompts = await storage.examples.system_prompts(
        dataset.guild_id, dataset.id, status=ExampleStatus.APPROVED, limit=2
    )
    if len(prompts) == 1 and prompts[0][0]:
        return prompts[0][0]
    return None


# -- context ----------------------------------------------------------------------------

Counter = Callable[[Sequence[Mapping[str, Any]]], int]


def token_counter(model: str, catalogue: PriceCatalogue) -> Counter:
    """Counts a conversation's tokens with ``model``'s own tokenizer (the chat template for
    the trainer's models, tiktoken for OpenAI's; an ``o200k_base`` estimate for a model
    nobody knows)."""
    try:
        encoding = encoding_for_model(model, catalogue)
    except UnknownModel:
        encoding = FALLBACK_ENCODING
    counter = get_counter(encoding)
    return lambda messages: counter.count_messages(messages).tokens


def context_size(model: str, catalogue: PriceCatalogue) -> int:
    price = catalogue.find(model)
    return price.training_context if price is not None else DEFAULT_CONTEXT


def answer_room(context: int) -> int:
    """Tokens kept for the answer: a quarter of the context, at most :data:`MAX_ANSWER_TOKENS`."""
    return max(16, min(MAX_ANSWER_TOKENS, context // 4))


def strip_note(text: str) -> str:
    """An earlier answer without the base-model note it ended with."""
    head, sep, _ = text.rpartition(f"\n\n{BASE_NOTE_PREFIX}")
    return head if sep else text


def turns_of(history: Sequence[ContextMessage]) -> list[ChatMessage]:
    """The messages as alternating turns: bot's answers are the assistant's, the rest the
    user's; consecutive messages of one role are joined by a newline. Empty ones skipped."""
    turns: list[ChatMessage] = []
    for message in history:
        text = (strip_note(message.text) if message.from_bot else message.text).strip()
        if not text:
            continue
        role: Literal["user", "assistant"] = "assistant" if message.from_bot else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n{text}"}
        else:
            turns.append({"role": role, "content": text})
    while turns and turns[0]["role"] == "assistant":
        turns.pop(0)  # a conversation starts with the user
    return turns


def build_conversation(
    history: Sequence[ContextMessage],
    system_prompt: str | None,
    budget: int,
    count: Counter,
) -> tuple[list[ChatMessage], int]:
    """The messages to send (system prompt first) and how many messages were dropped.

    The oldest messages go first (before turns are joined) until ``count`` of the whole
    conversation is at most ``budget``; raises :class:`ConversationTooLong` when the last
    message alone does not fit.
    """
    if not turns_of(history[-1:]):
        raise ConversationTooLong("There is nothing to answer in that message.")
    head: list[ChatMessage] = (
        [{"role": "system", "content": system_prompt}] if system_prompt else []
    )
    for start in range(len(history)):
        if start and history[start].from_bot and start < len(history) - 1:
            continue  # a conversation starts with the user: cut past the answer too
        messages = head + turns_of(history[start:])
        if count(messages) <= budget:
            return messages, start
    raise ConversationTooLong(
        "Your message is too long for this model: please send a shorter one."
    )


# -- errors -----------------------------------------------------------------------------


def error_message(error: BaseException) -> str:
    """A short line for the channel when an answer fails (never a traceback or a key)."""
    if isinstance(error, RateLimited):
        return "*The model is busy right now: please try again in a moment.*"
    if isinstance(error, ModelNotFound):
        return (
            "*The model is not available any more: an admin can choose another with "
            "`/model use` or go back with `/model rollback`.*"
        )
    if isinstance(error, ContextTooLong | ConversationTooLong):
        return (
            "*This conversation is too long for the model: start a new thread, or reply to "
            "a shorter message.*"
        )
    if isinstance(error, Unavailable):
        return "*The model is not answering right now: please try again in a moment.*"
    if isinstance(error, ProviderError):
        return f"*{str(error)[:300]}*"
    return "*Something went wrong while answering: please try again later.*"


# -- limits -----------------------------------------------------------------------------


@dataclass
class Ticket:
    """An answer being written; release it when done."""

    channel_id: int
    _limits: ChatLimits
    _released: bool = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limits._finish(self.channel_id)


@dataclass(frozen=True)
class Refusal:
    """Why a message is not answered now; ``notice`` is None when the member was already
    told (stay silent)."""

    notice: str | None


@dataclass
class ChatLimits:
    """Per-user cooldown and per-channel concurrency, in memory (see the module docstring)."""

    cooldown: float = COOLDOWN_SECONDS
    per_channel: int = CHANNEL_CONCURRENCY
    clock: Callable[[], float] = time.monotonic
    _last: dict[tuple[int, int], float] = field(default_factory=dict)
    _told: dict[tuple[int, int], float] = field(default_factory=dict)
    _busy: dict[int, int] = field(default_factory=dict)

    def acquire(self, guild_id: int, user_id: int, channel_id: int) -> Ticket | Refusal:
        now = self.clock()
        key = (guild_id, user_id)
        last = self._last.get(key)
        if last is not None and now - last < self.cooldown:
            return self._refuse(key, now, f"Slow down a little: one message every "
                                f"{self.cooldown:g} seconds, please.")
        if self._busy.get(channel_id, 0) >= self.per_channel:
            return self._refuse(key, now, "I am already answering here: please wait a moment "
                                "and send it again.")
        self._last[key] = now
        self._busy[channel_id] = self._busy.get(channel_id, 0) + 1
        if len(self._last) > 10_000:
            self._forget(now)
        return Ticket(channel_id, self)

    def _refuse(self, key: tuple[int, int], now: float, notice: str) -> Refusal:
        told = self._told.get(key)
        if told is not None and now - told < max(self.cooldown, NOTICE_SECONDS):
            return Refusal(None)
        self._told[key] = now
        return Refusal(notice)

    def _finish(self, channel_id: int) -> None:
        left = self._busy.get(channel_id, 1) - 1
        if left > 0:
            self._busy[channel_id] = left
        else:
            self._busy.pop(channel_id, None)

    def _forget(self, now: float) -> None:
        horizon = max(self.cooldown, NOTICE_SECONDS)
        self._last = {k: t for k, t in self._last.items() if now - t < horizon}
        self._told = {k: t for k, t in self._told.items() if now - t < horizon}


# -- the service ------------------------------------------------------------------------


class ChatService:
    """Chat channels, the model and system prompt of a guild, and each answer's plan."""

    def __init__(
        self,
        storage: Storage,
        catalogue: PriceCatalogue,
        default_model: str,
        limits: ChatLimits | None = None,
    ) -> None:
        self._storage = storage
        self._catalogue = catalogue
        self._default_model = default_model
        self.limits = limits or ChatLimits()
        self._channels: dict[int, set[int]] = {}
        self._loading: dict[int, asyncio.Task[set[int]]] = {}
        self._choices: dict[int, tuple[int, ModelChoice]] = {}

    # channels
    async def _enabled(self, guild_id: int) -> set[int]:
        """The guild's chat channels, read once. Callers waiting for the same read resume in
        the order they asked, so a message that arrived before ``/chat on`` is judged on the
        state before it (see :meth:`enable`)."""
        channels = self._channels.get(guild_id)
        if channels is not None:
            return channels
        loading = self._loading.get(guild_id)
        if loading is None:
            loading = self._loading[guild_id] = asyncio.create_task(self._read_channels(guild_id))
        return await asyncio.shield(loading)  # one caller cancelled leaves the read to the rest

    async def _read_channels(self, guild_id: int) -> set[int]:
        try:
            rows = await self._storage.channels.list_all(guild_id)
            return self._channels.setdefault(guild_id, {r.channel_id for r in rows})
        finally:
            del self._loading[guild_id]

    async def enable(self, guild_id: int, channel_id: int, *, by: int | None = None) -> bool:
        """Chat on in the channel; False if it already was."""
        enabled = await self._enabled(guild_id)  # read before writing: it cannot see this change
        added = await self._storage.channels.add(guild_id, channel_id, added_by=by)
        enabled.add(channel_id)
        return added

    async def disable(self, guild_id: int, channel_id: int) -> bool:
        """Chat off in the channel; False if it was not on."""
        enabled = await self._enabled(guild_id)
        removed = await self._storage.channels.remove(guild_id, channel_id)
        enabled.discard(channel_id)
        return removed

    async def is_chat_channel(
        self, guild_id: int, channel_id: int, parent_id: int | None = None
    ) -> bool:
        """Whether chat is on in the channel, or (a thread) in its parent."""
        await self._enabled(guild_id)
        known = self.known_chat_channel(guild_id, channel_id, parent_id)
        return bool(known)

    def known_chat_channel(
        self, guild_id: int, channel_id: int, parent_id: int | None = None
    ) -> bool | None:
        """:meth:`is_chat_channel` without waiting: None when the guild's channels are not
        read yet."""
        enabled = self._channels.get(guild_id)
        if enabled is None:
            return None
        return channel_id in enabled or (parent_id is not None and parent_id in enabled)

    # model
    async def model_for(self, guild_id: int) -> ModelChoice:
        """The model and system prompt the guild chats with now (kept between answers
        until this process writes anything to the database: see ``Database.version``)."""
        version = self._storage.db.version
        kept = self._choices.get(guild_id)
        if kept is not None and kept[0] == version and version % 2 == 0:
            return kept[1]
        choice = await self._read_model(guild_id)
        if self._storage.db.version == version and version % 2 == 0:
            if len(self._choices) >= MODEL_CHOICES_KEPT:
                self._choices.clear()
            self._choices[guild_id] = (version, choice)
        return choice

    async def _read_model(self, guild_id: int) -> ModelChoice:
        active = await self._storage.active_models.get(guild_id)
        if active is not None:
            return ModelChoice(active.model, active.system_prompt, fine_tuned=True)
        dataset = await self.default_dataset(guild_id)
        prompt = None if dataset is None else await training_system_prompt(self._storage, dataset)
        if dataset is not None and dataset.base_model:
            return ModelChoice(dataset.base_model, prompt, fine_tuned=False)
        settings = await self._storage.guilds.get(guild_id)
        model = settings.default_base_model or self._default_model
        return ModelChoice(model, prompt, fine_tuned=False)

    async def default_dataset(self, guild_id: int) -> Dataset | None:
        """The default dataset, else the server's only one."""
        settings = await self._storage.guilds.get(guild_id)
        if settings.default_dataset_id is not None:
            dataset = await self._storage.datasets.get(guild_id, settings.default_dataset_id)
            if dataset is not None:
                return dataset
        datasets = await self._storage.datasets.list_all(guild_id)
        return datasets[0] if len(datasets) == 1 else None

    # answers
    async def prepare(self, guild_id: int, history: Sequence[ContextMessage]) -> ChatPlan:
        """The plan for answering the last message of ``history``; raises
        :class:`ConversationTooLong` when it cannot fit."""
        choice = await self.model_for(guild_id)
        return self.plan(choice, history)

    def plan(self, choice: ModelChoice, history: Sequence[ContextMessage]) -> ChatPlan:
        context = context_size(choice.model, self._catalogue)
        room = answer_room(context)
        count = token_counter(choice.model, self._catalogue)
        messages, dropped = build_conversation(
            history, choice.system_prompt, context - room, count
        )
        return ChatPlan(choice.model, choice.system_prompt, messages, room, choice.note, dropped)
