"""Privacy requests: list and delete everything of one member in one guild."""

from __future__ import annotations

from storage.store import Storage
from tests.storage.helpers import ALICE, BOB, GUILD_A, GUILD_B, example


async def test_user_data_lists_and_deletion_removes_only_that_member_in_that_guild(tmp_db_path):
    store = await Storage.open(tmp_db_path)
    try:
        dataset = await store.datasets.create(GUILD_A, "d")
        other_guild = await store.datasets.create(GUILD_B, "d")
        alice_1 = await store.examples.add(
            GUILD_A, dataset.id, example(1), contributor_id=ALICE,
            token_counts={"o200k_base": 11},
        )
        alice_2 = await store.examples.add(GUILD_A, dataset.id, example(2), contributor_id=ALICE)
        bob_1 = await store.examples.add(
            GUILD_A, dataset.id, example(3), contributor_id=BOB, token_counts={"o200k_base": 7}
        )
        alice_elsewhere = await store.examples.add(
            GUILD_B, other_guild.id, example(1), contributor_id=ALICE
        )
        await store.votes.cast(GUILD_A, bob_1.id, ALICE, 1)     # Alice's vote on Bob's example
        await store.votes.cast(GUILD_A, alice_1.id, BOB, -1)    # Bob's vote on Alice's example
        await store.votes.cast(GUILD_A, bob_1.id, BOB, 1)
        await store.votes.cast(GUILD_B, alice_elsewhere.id, ALICE, 1)
        await store.consents.grant(GUILD_A, ALICE)
        await store.consents.grant(GUILD_B, ALICE)

        data = await store.privacy.user_data(GUILD_A, ALICE)
        assert [r.id for r in data.examples] == [alice_1.id, alice_2.id]
        assert [(v.example_id, v.value) for v in data.votes] == [(bob_1.id, 1)]
        assert data.consent is not None and data.consent.granted

        deletion = await store.privacy.delete_user_data(GUILD_A, ALICE)
        assert (deletion.examples, deletion.votes, deletion.consents) == (2, 1, 1)

        after = await store.privacy.user_data(GUILD_A, ALICE)
        assert after.examples == () and after.votes == () and after.consent is None
        # Bob's vote on Alice's (deleted) example went with it; Bob's own rows stay.
        assert [v.example_id for v in await store.votes.by_user(GUILD_A, BOB)] == [bob_1.id]
        assert await store.examples.get(GUILD_A, bob_1.id) is not None
        stats = await store.examples.stats(GUILD_A, dataset.id, "o200k_base")
        assert (stats.total.examples, stats.total.tokens) == (1, 7)
        # Alice's rows in guild B are untouched.
        elsewhere = await store.privacy.user_data(GUILD_B, ALICE)
        assert [r.id for r in elsewhere.examples] == [alice_elsewhere.id]
        assert len(elsewhere.votes) == 1 and elsewhere.consent.granted
    finally:
        await store.close()
