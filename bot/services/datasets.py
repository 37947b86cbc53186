"""Datasets: create, find, describe, change and delete a guild's datasets.

Every method takes the guild it acts for; a dataset of another guild is "not found", never
"forbidden", so nobody learns that it exists. Who may call what (admins create, edit and
delete) is the caller's check; this module checks what was asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dataset.errors import InvalidInput
from bot.dataset.policy import SystemPromptPolicy
from bot.dataset.pricing import PriceCatalogue
from bot.dataset.tokens import FALLBACK_ENCODING
from storage.errors import NotFoundError
from storage.records import Dataset, DatasetStats
from storage.review_posts import ReviewPost
from storage.store import Storage

MAX_NAME_LENGTH = 50
"""Short enough for autocomplete choices and embed titles."""
MAX_SYSTEM_PROMPT_LENGTH = 4000
"""What a Discord text input can hold."""


@dataclass(frozen=True)
class DatasetDraft:
    """What an admin asked for when creating or editing a dataset, checked."""

    name: str
    system_prompt: str | None
    policy: SystemPromptPolicy
    base_model: str | None


class DatasetService:
    def __init__(self, storage: Storage, catalogue: PriceCatalogue) -> None:
        self._storage = storage
        self._catalogue = catalogue

    async def create(
        self,
        guild_id: int,
        name: str,
        *,
        system_prompt: str | None = None,
        policy: str | None = None,
        base_model: str | None = None,
    ) -> Dataset:
        """A new dataset. The policy defaults to ``include`` when a system prompt is given
        (the prompt goes into every training example and every chat), else ``as_written``."""
        draft = self._draft(name, system_prompt, policy, base_model)
        return await self._storage.datasets.create(
            guild_id,
            draft.name,
            system_prompt=draft.system_prompt,
            policy=draft.policy,
            base_model=draft.base_model,
        )

    async def get(self, guild_id: int, dataset_id: int) -> Dataset:
        dataset = await self._storage.datasets.get(guild_id, dataset_id)
        if dataset is None:
            raise NotFoundError("That dataset does not exist in this server.")
        return dataset

    async def counts(self, dataset: Dataset) -> DatasetStats:
        """Examples by status, from the totals the database keeps (no token counting)."""
        return await self._storage.examples.stats(dataset.guild_id, dataset.id, FALLBACK_ENCODING)

    async def all(self, guild_id: int) -> list[Dataset]:
        return await self._storage.datasets.list_all(guild_id)

    async def names(self, guild_id: int, typed: str = "", limit: int = 25) -> list[str]:
        """Dataset names for autocomplete: those containing what was typed, by name."""
        needle = typed.strip().lower()
        names = [d.name for d in await self.all(guild_id) if needle in d.name.lower()]
        return names[:limit]

    async def resolve(self, guild_id: int, name: str | None) -> Dataset:
        """The dataset a command means: by name, else the server's only dataset.

        Raises a :class:`~bot.dataset.errors.UserError` that says what to do when there is
        no such dataset, none at all, or several and no name.
        """
        if name is not None and name.strip():
            dataset = await self._storage.datasets.get_by_name(guild_id, name.strip())
            if dataset is None:
                raise NotFoundError(
                    f"There is no dataset named {_quoted(name)} in this server. "
                    "`/dataset list` shows them."
                )
            return dataset
        default_id = (await self._storage.guilds.get(guild_id)).default_dataset_id
        if default_id is not None:
            default = await self._storage.datasets.get(guild_id, default_id)
            if default is not None:
                return default
        datasets = await self.all(guild_id)
        if not datasets:
            raise NotFoundError(
                "This server has no dataset yet. An admin can create one with `/dataset create`."
            )
        if len(datasets) > 1:
            raise InvalidInput(
                f"This server has {len(datasets)} datasets and no default: choose one with the "
                "`dataset` option (an admin can set a default with `/dataset default`)."
            )
        return datasets[0]

    async def edit(
        self,
        guild_id: int,
        dataset_id: int,
        *,
        system_prompt: str | None = None,
        policy: str | None = None,
        base_model: str | None = None,
    ) -> Dataset:
        """Change what was given; an empty system prompt or base model clears it."""
        current = await self.get(guild_id, dataset_id)
        prompt = current.system_prompt if system_prompt is None else (system_prompt.strip() or None)
        model = current.base_model if base_model is None else (base_model.strip() or None)
        draft = self._draft(current.name, prompt, policy or current.policy.value, model)
        updated = await self._storage.datasets.update(
            guild_id,
            dataset_id,
            system_prompt=draft.system_prompt,
            policy=draft.policy,
            base_model=draft.base_model,
        )
        if updated is None:
            raise NotFoundError("That dataset does not exist in this server.")
        return updated

    async def delete(self, guild_id: int, dataset_id: int) -> list[ReviewPost]:
        """Delete the dataset with its examples, votes and token counts. Returns the review
        posts of its examples, for the caller to delete from Discord."""
        posts = await self._storage.review_posts.for_dataset(guild_id, dataset_id)
        if not await self._storage.datasets.delete(guild_id, dataset_id):
            raise NotFoundError("That dataset does not exist in this server.")
        settings = await self._storage.guilds.get(guild_id)
        if settings.default_dataset_id == dataset_id:
            await self._storage.guilds.update(guild_id, default_dataset_id=None)
        return posts

    async def default(self, guild_id: int) -> Dataset | None:
        """The guild's default dataset, if one is set (and still exists)."""
        default_id = (await self._storage.guilds.get(guild_id)).default_dataset_id
        if default_id is None:
            return None
        return await self._storage.datasets.get(guild_id, default_id)

    async def set_default(self, guild_id: int, name: str) -> Dataset:
        """Make the named dataset the one commands use when none is named."""
        dataset = await self.resolve(guild_id, name)
        await self._storage.guilds.update(guild_id, default_dataset_id=dataset.id)
        return dataset

    def _draft(
        self, name: str, system_prompt: str | None, policy: str | None, base_model: str | None
    ) -> DatasetDraft:
        name = " ".join(name.split())
        if not name:
            raise InvalidInput("A dataset needs a name.")
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidInput(f"A dataset name can be at most {MAX_NAME_LENGTH} characters.")
        prompt = system_prompt.strip() if system_prompt else None
        if prompt and len(prompt) > MAX_SYSTEM_PROMPT_LENGTH:
            raise InvalidInput(
                f"The system prompt can be at most {MAX_SYSTEM_PROMPT_LENGTH} characters."
            )
        if policy is None:
            chosen = SystemPromptPolicy.INCLUDE if prompt else SystemPromptPolicy.AS_WRITTEN
        else:
            try:
                chosen = SystemPromptPolicy(policy.strip().lower())
            except ValueError:
                options = ", ".join(p.value for p in SystemPromptPolicy)
                raise InvalidInput(f"The policy must be one of {options}.") from None
        if chosen is SystemPromptPolicy.INCLUDE and not prompt:
            raise InvalidInput(
                "The policy `include` puts the dataset's system prompt into every example: "
                "give a `system_prompt`, or choose `omit` or `as_written`."
            )
        model = base_model.strip() if base_model else None
        if model:
            price = self._catalogue.find(model)
            if price is None:
                known = ", ".join(sorted(p.model for p in self._catalogue.models()))
                raise InvalidInput(f"Unknown base model {_quoted(model)}. Known models: {known}.")
            model = price.model
        return DatasetDraft(name, prompt, chosen, model)


def _quoted(text: str) -> str:
    """User text shown back in a message: trimmed and in backticks, never markdown."""
    text = " ".join(text.split()).replace("`", "'")
    return f"`{text[:60]}`"
