"""The models a guild chatted with before: rollback goes back one step, across restarts."""

from __future__ import annotations

from storage.store import Storage
from tests.storage.helpers import GUILD_A, GUILD_B


async def test_rollback_walks_back_through_the_stored_history(tmp_path):
    path = tmp_path / "db.sqlite3"
    async with await Storage.open(path) as store:
        for model in ("ft:a", "ft:b", "ft:b", "ft:c"):  # re-activating the same model adds nothing
            await store.active_models.set(GUILD_A, model, system_prompt=f"prompt {model}")
        await store.active_models.set(GUILD_B, "ft:other")
        assert (await store.active_models.previous(GUILD_A)).model == "ft:b"

    async with await Storage.open(path) as store:  # a restart keeps the history
        restored = await store.active_models.roll_back(GUILD_A)
        assert (restored.model, restored.system_prompt) == ("ft:b", "prompt ft:b")
        assert (await store.active_models.get(GUILD_A)).model == "ft:b"
        assert (await store.active_models.roll_back(GUILD_A)).model == "ft:a"
        assert await store.active_models.roll_back(GUILD_A) is None  # no history: cleared
        assert await store.active_models.get(GUILD_A) is None
        assert (await store.active_models.get(GUILD_B)).model == "ft:other"
        assert await store.active_models.previous(GUILD_B) is None
