"""Which model a guild chats with: ``/model use``, ``info``, ``rollback`` and ``compare``.

* **use**: a job of ours (its id, or the backend's job id, once it succeeded) or a model id
  the backend lists. The system prompt stored with it is the one its dataset's policy put
  into training (:func:`bot.services.chat.training_system_prompt`; a model id that is none
  of our jobs uses the default dataset's).
* **rollback**: back to the model active before the current one. Every activation (here or
  with a fine-tune's **Activate** button) keeps the model it replaces in the stored
  history (``active_model_history``), so rollback works across restarts; with no history,
  rollback clears the active model and the base model answers again.
* **compare**: up to three prompts answered by the base and the fine-tuned model side by
  side: the one given, else the user turns of the first three examples the tuned model's
  job held out in its validation file (recorded when it started; examples deleted since,
  e.g. by a member's opt-out, or no longer approved, are skipped), else, for a job with no
  recorded split or a model id that is none of our jobs, the user turns of the dataset's
  last three approved examples. :attr:`Comparison.prompt_source` says which.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from bot.dataset.errors import InvalidInput, UserError
from bot.dataset.pricing import base_model_of
from bot.providers.errors import ModelNotFound, ProviderError
from bot.providers.interface import Provider
from bot.providers.types import ChatMessage
from bot.services.chat import ChatService, ModelChoice, error_message, training_system_prompt
from storage.records import (
    ActiveModel,
    Dataset,
    ExampleRecord,
    ExampleStatus,
    FineTuneJob,
    JobStatus,
)
from storage.store import Storage

COMPARE_PROMPTS = 3
COMPARE_MAX_TOKENS = 400
HISTORY_KEPT = 20
RECENT_JOBS = 100
SPLIT_PAGE = 20


@dataclass(frozen=True)
class ModelStatus:
    """What ``/model info`` shows."""

    choice: ModelChoice
    active: ActiveModel | None
    job: FineTuneJob | None
    rollback_to: str | None
    """The model a rollback would go back to (None: the base model)."""


@dataclass(frozen=True)
class Rolledback:
    model: str
    fine_tuned: bool


@dataclass(frozen=True)
class ComparedPrompt:
    prompt: str
    base: str
    tuned: str


class PromptSource(StrEnum):
    """Where a comparison's prompts came from."""

    GIVEN = "given"
    """The member's own prompt."""
    VALIDATION = "validation"
    """Held out in the validation file of the tuned model's job: never trained on."""
    RECENT = "recent"
    """The dataset's last approved examples (no validation split is recorded for the
    model): the model may have trained on them."""


@dataclass(frozen=True)
class Comparison:
    base_model: str
    tuned_model: str
    system_prompt: str | None
    rows: tuple[ComparedPrompt, ...]
    prompt_source: PromptSource


def _user_prompt(record: ExampleRecord) -> str | None:
    """The example's last user turn, if it is text."""
    users = [m.get("content") for m in record.example.messages if m.get("role") == "user"]
    text = users[-1] if users else None
    return text.strip() if isinstance(text, str) and text.strip() else None


class ModelService:
    def __init__(self, storage: Storage, provider: Provider, chat: ChatService) -> None:
        self._storage = storage
        self._provider = provider
        self._chat = chat

    async def _job_for(self, guild_id: int, target: str) -> FineTuneJob | None:
        if target.isdigit():
            job = await self._storage.jobs.get(guild_id, int(target))
            if job is not None:
                return job
        for job in await self._storage.jobs.recent(guild_id, RECENT_JOBS):
            if target in (job.fine_tuned_model, job.provider_job_id):
                return job
        return None

    async def _dataset(self, guild_id: int, job: FineTuneJob | None) -> Dataset | None:
        if job is not None and job.dataset_id is not None:
            dataset = await self._storage.datasets.get(guild_id, job.dataset_id)
            if dataset is not None:
                return dataset
        return await self._chat.default_dataset(guild_id)

    async def use(self, guild_id: int, target: str) -> ActiveModel:
        """Make ``target`` (a job of ours or a model id) the guild's chat model."""
        target = target.strip()
        if not target:
            raise InvalidInput("Name a job (its number) or a model id.")
        job = await self._job_for(guild_id, target)
        if job is not None:
            if job.status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
                raise InvalidInput(
                    f"Job #{job.id} has no model yet (it is {job.status}): only a job that "
                    "succeeded can be used."
                )
            model = job.fine_tuned_model
        else:
            try:
                model = (await self._provider.get_model(target)).id
            except ModelNotFound:
                raise InvalidInput(
                    f"There is no job #{target[:20]} here and the backend lists no model "
                    f"`{target[:100].replace('`', '')}`."
                ) from None
        dataset = await self._dataset(guild_id, job)
        prompt = None if dataset is None else await training_system_prompt(self._storage, dataset)
        active = await self._storage.active_models.set(
            guild_id, model, system_prompt=prompt, job_id=job.id if job else None
        )  # the model it replaces goes into the stored history, for rollback
        if active is None:  # the job vanished meanwhile
            raise InvalidInput("That job no longer exists.")
        return active

    async def info(self, guild_id: int) -> ModelStatus:
        active = await self._storage.active_models.get(guild_id)
        job = None
        if active is not None and active.job_id is not None:
            job = await self._storage.jobs.get(guild_id, active.job_id)
        previous = await self._storage.active_models.previous(guild_id)
        rollback_to = previous.model if previous else None
        return ModelStatus(await self._chat.model_for(guild_id), active, job, rollback_to)

    async def rollback(self, guild_id: int) -> Rolledback:
        """Back to the previously active model, else to the base model."""
        if await self._storage.active_models.get(guild_id) is None:
            raise InvalidInput("No fine-tuned model is active: the base model already answers.")
        restored = await self._storage.active_models.roll_back(guild_id)
        if restored is not None:
            return Rolledback(restored.model, fine_tuned=True)
        choice = await self._chat.model_for(guild_id)
        return Rolledback(choice.model, fine_tuned=False)

    async def compare(
        self, guild_id: int, prompt: str | None = None, model_id: str | None = None
    ) -> Comparison:
        """``prompt`` (or three held-out ones) answered by the base and the tuned model."""
        active = await self._storage.active_models.get(guild_id)
        tuned = (model_id or "").strip() or (active.model if active else None)
        if not tuned:
            raise InvalidInput(
                "No fine-tuned model is active: choose one with `/model use` first."
            )
        job = await self._job_for(guild_id, tuned)
        dataset = await self._dataset(guild_id, job)
        if active is not None and active.model == tuned:
            system = active.system_prompt
        else:
            system = None if dataset is None else await training_system_prompt(
                self._storage, dataset
            )
        if job is not None:
            base = job.model
        elif tuned.startswith("ft:"):
            base = base_model_of(tuned)
        else:
            fallback = await self._chat.model_for(guild_id)
            base = (dataset.base_model if dataset else None) or fallback.model
        if prompt and prompt.strip():
            prompts, source = [prompt.strip()], PromptSource.GIVEN
        else:
            prompts, source = await self._held_out(guild_id, job, dataset)
        if not prompts:
            raise InvalidInput(
                "There are no approved examples to take prompts from: give a `prompt`."
            )
        rows = await asyncio.gather(*(self._row(p, base, tuned, system) for p in prompts))
        return Comparison(base, tuned, system, tuple(rows), source)

    async def _held_out(
        self, guild_id: int, job: FineTuneJob | None, dataset: Dataset | None
    ) -> tuple[list[str], PromptSource]:
        """The job's validation prompts, else the dataset's last approved ones."""
        if job is not None:
            prompts = await self._validation_prompts(guild_id, job.id)
            if prompts:
                return prompts, PromptSource.VALIDATION
        return await self._recent_prompts(dataset), PromptSource.RECENT

    async def _validation_prompts(self, guild_id: int, job_id: int) -> list[str]:
        """The user turns of the first examples (still approved) the job held out."""
        prompts: list[str] = []
        after = 0
        while True:
            ids = await self._storage.job_splits.example_ids(
                guild_id, job_id, status=ExampleStatus.APPROVED, after_id=after, limit=SPLIT_PAGE
            )
            for example_id in ids:
                record = await self._storage.examples.get(guild_id, example_id)
                text = None if record is None else _user_prompt(record)
                if text is not None:
                    prompts.append(text)
                    if len(prompts) == COMPARE_PROMPTS:
                        return prompts
            if len(ids) < SPLIT_PAGE:
                break
            after = ids[-1]
        return prompts

    async def _recent_prompts(self, dataset: Dataset | None) -> list[str]:
        if dataset is None:
            return []
        last: deque[str] = deque(maxlen=COMPARE_PROMPTS)
        async for record in self._storage.examples.iterate(
            dataset.guild_id, dataset.id, status=ExampleStatus.APPROVED
        ):
            text = _user_prompt(record)
            if text is not None:
                last.append(text)
        return list(last)

    async def _row(self, prompt: str, base: str, tuned: str, system: str | None) -> ComparedPrompt:
        messages: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        base_text, tuned_text = await asyncio.gather(
            self._answer(base, messages), self._answer(tuned, messages)
        )
        return ComparedPrompt(prompt, base_text, tuned_text)

    async def _answer(self, model: str, messages: list[ChatMessage]) -> str:
        try:
            reply = await self._provider.chat(model, messages, max_tokens=COMPARE_MAX_TOKENS)
        except (ProviderError, UserError) as exc:
            return error_message(exc)
        return reply.text.strip() or "*(empty answer)*"
