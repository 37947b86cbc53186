"""What the Discord layer stores beside each example: turn authors, review posts, the
guild's default dataset, per-contributor counts, and billed tokens of the uploaded file."""

from __future__ import annotations

import io

import pytest

from bot.dataset.checker import check_file
from bot.dataset.errors import InvalidInput
from bot.dataset.pricing import PriceCatalogue
from bot.services.contributions import NotAllowed
from bot.services.registry import build_services
from bot.services.stats import StatsService
from storage.errors import NotFoundError
from storage.records import ExampleSource, ExampleStatus
from tests.storage.helpers import ALICE, BOB, GUILD_A, GUILD_B, example

CATALOGUE = PriceCatalogue.load()
CAROL = 900_000_000_000_000_003


@pytest.fixture
def services(store):
    return build_services(store, CATALOGUE)


async def test_contributor_counts_follow_every_insert_status_change_and_delete(store, services):
    dataset = await services.datasets.create(GUILD_A, "marv")
    ids = []
    for n in range(9):
        who = (ALICE, BOB, CAROL)[n % 3] if n < 6 else ALICE
        ids.append((await store.examples.add(GUILD_A, dataset.id, example(n), contributor_id=who)).id)
    await store.examples.set_status_many(GUILD_A, ids[:7], ExampleStatus.APPROVED)
    await store.examples.set_status(GUILD_A, ids[1], ExampleStatus.REJECTED)
    await store.examples.delete(GUILD_A, ids[2])

    rows = await store.db.fetchall(
        "SELECT contributor_id, count(*) AS n FROM examples WHERE dataset_id = ? "
        "AND status = 'approved' GROUP BY contributor_id ORDER BY n DESC, contributor_id",
        (dataset.id,),
    )
    expected = [(r["contributor_id"], r["n"]) for r in rows]
    assert await store.examples.top_contributors(GUILD_A, dataset.id) == expected
    assert expected[0] == (ALICE, 3)
    assert await store.examples.contributor_count(GUILD_A, dataset.id, ALICE, "pending") == 2
    assert await store.examples.top_contributors(GUILD_B, dataset.id) == []
    assert await store.examples.contributor_count(GUILD_B, dataset.id, ALICE, "pending") == 0
    report = await services.stats.stats(dataset)
    assert report.top_contributors == expected


async def test_billed_tokens_are_those_of_the_exported_file_under_each_policy(
    store, services, tmp_path
):
    dataset = await services.datasets.create(
        GUILD_A, "marv", system_prompt="You are Marv, a reluctant chatbot.", base_model="gpt-4o-mini"
    )
    for n in range(12):
        record = (await services.contributions.add(dataset, ALICE + n, example(n))).record
        await services.curation.decide(GUILD_A, record.id, ExampleStatus.APPROVED)

    async def billed_vs_file() -> tuple[int, int]:
        current = await services.datasets.get(GUILD_A, dataset.id)
        report = await services.stats.stats(current)
        path = tmp_path / "train.jsonl"
        await services.files.export(current, path)
        checked = check_file(path, CATALOGUE.get("gpt-4o-mini"))
        assert report.chosen is not None
        return report.chosen.billed_tokens, checked.billed_tokens

    with_prompt, expected = await billed_vs_file()
    assert with_prompt == expected
    await services.datasets.edit(GUILD_A, dataset.id, system_prompt="You are Marv.")
    shorter, expected = await billed_vs_file()
    assert shorter == expected < with_prompt
    await services.datasets.edit(GUILD_A, dataset.id, policy="omit")
    omitted, expected = await billed_vs_file()
    assert omitted == expected < shorter


async def test_default_dataset_is_used_when_none_is_named_and_cleared_on_delete(services):
    marv = await services.datasets.create(GUILD_A, "marv")
    await services.datasets.create(GUILD_A, "pirate")
    other = await services.datasets.create(GUILD_B, "only")
    with pytest.raises(InvalidInput, match="2 datasets and no default"):
        await services.datasets.resolve(GUILD_A, None)
    assert (await services.datasets.set_default(GUILD_A, "MARV")).id == marv.id
    assert (await services.datasets.resolve(GUILD_A, None)).id == marv.id
    assert (await services.datasets.resolve(GUILD_A, "pirate")).name == "pirate"
    with pytest.raises(NotFoundError):
        await services.datasets.set_default(GUILD_A, "only")  # guild B's
    assert (await services.datasets.resolve(GUILD_B, None)).id == other.id
    await services.datasets.delete(GUILD_A, marv.id)
    assert await services.datasets.default(GUILD_A) is None
    assert (await services.datasets.resolve(GUILD_A, None)).name == "pirate"


async def test_quoted_authors_must_have_opted_in_and_are_stored_by_turn(store, services):
    dataset = await services.datasets.create(GUILD_A, "marv")
    conversation = example(1, turns=2)
    with pytest.raises(NotAllowed, match=f"<@{BOB}>"):
        await services.contributions.add(
            dataset, ALICE, conversation, source=ExampleSource.CAPTURE, authors={0: BOB, 1: ALICE}
        )
    await services.privacy.opt_in(GUILD_B, BOB)  # consent in another guild does not count
    with pytest.raises(NotAllowed):
        await services.contributions.add(dataset, ALICE, conversation, authors={0: BOB})
    await services.privacy.opt_in(GUILD_A, BOB)
    added = await services.contributions.add(
        dataset, ALICE, conversation, source=ExampleSource.CAPTURE, authors={0: BOB, 1: ALICE}
    )
    assert await services.contributions.authors(GUILD_A, added.record.id) == {0: BOB, 1: ALICE}
    assert await services.contributions.authors(GUILD_B, added.record.id) == {}
    assert [r.id for r in await store.examples.list_involving(GUILD_A, BOB)] == [added.record.id]


async def test_opting_out_deletes_quoted_turns_and_returns_their_review_posts(store, services):
    dataset = await services.datasets.create(GUILD_A, "marv")
    elsewhere = await services.datasets.create(GUILD_B, "marv")
    await services.privacy.opt_in(GUILD_A, BOB)
    quoted = await services.contributions.add(dataset, ALICE, example(1), authors={0: BOB})
    own = await services.contributions.add(dataset, BOB, example(2))
    kept = await services.contributions.add(dataset, ALICE, example(3))
    other_guild = await services.contributions.add(elsewhere, BOB, example(4))
    await store.review_posts.record(GUILD_A, quoted.record.id, 5, 50)
    await store.review_posts.record(GUILD_A, kept.record.id, 5, 51)
    assert not await store.review_posts.record(GUILD_B, kept.record.id, 5, 52)

    result = await services.privacy.opt_out(GUILD_A, BOB)
    assert result.examples_deleted == 2
    assert [(p.example_id, p.message_id) for p in result.review_posts] == [(quoted.record.id, 50)]
    for gone in (quoted, own):
        assert await store.examples.get(GUILD_A, gone.record.id) is None
    assert await store.examples.get(GUILD_A, kept.record.id) is not None
    assert await store.examples.get(GUILD_B, other_guild.record.id) is not None
    assert await store.review_posts.get(GUILD_A, quoted.record.id) is None
    with pytest.raises(NotAllowed):
        await services.contributions.check_authors(GUILD_A, ALICE, {0: BOB})


async def test_removing_an_example_returns_its_review_post(store, services):
    dataset = await services.datasets.create(GUILD_A, "marv")
    added = await services.contributions.add(dataset, ALICE, example(1))
    await store.review_posts.record(GUILD_A, added.record.id, 7, 70)
    with pytest.raises(NotAllowed):
        await services.contributions.remove(GUILD_A, added.record.id, BOB, curator=False)
    post = await services.contributions.remove(GUILD_A, added.record.id, ALICE, curator=False)
    assert post is not None and post.message_id == 70
    with pytest.raises(NotFoundError):
        await services.contributions.remove(GUILD_A, added.record.id, ALICE, curator=True)


async def test_the_pending_limit_counts_only_this_members_pending_examples(services):
    dataset = await services.datasets.create(GUILD_A, "marv")
    await services.guild_config.set_max_pending(GUILD_A, 2)
    first = await services.contributions.add(dataset, ALICE, example(1))
    await services.contributions.add(dataset, ALICE, example(2))
    await services.contributions.add(dataset, BOB, example(3))
    with pytest.raises(InvalidInput, match="already have 2 examples waiting"):
        await services.contributions.add(dataset, ALICE, example(4))
    await services.curation.decide(GUILD_A, first.record.id, ExampleStatus.APPROVED)
    await services.contributions.add(dataset, ALICE, example(4))


async def test_import_counts_tokens_with_the_policy_applied(services, tmp_path):
    dataset = await services.datasets.create(
        GUILD_A, "marv", system_prompt="You are Marv.", base_model="gpt-4o-mini"
    )
    data = b"".join(example(n).to_json().encode() + b"\n" for n in range(10))
    report = await services.files.import_file(
        dataset, io.BytesIO(data), contributor_id=ALICE, status="approved"
    )
    assert report.imported == 10
    stats = await services.stats.stats(dataset)
    path = tmp_path / "train.jsonl"
    await services.files.export(dataset, path)
    assert stats.chosen is not None
    assert stats.chosen.billed_tokens == check_file(path, CATALOGUE.get("gpt-4o-mini")).billed_tokens


async def test_a_comparison_over_a_large_uncounted_dataset_answers_at_once(store, services):
    """Only the chosen model's counts are exact at once; other encodings are estimated
    from them while they are counted in the background, then exact."""
    stats = StatsService(store, CATALOGUE, comparison_count_limit=3)
    dataset = await services.datasets.create(GUILD_A, "marv", base_model="gpt-4o-mini")
    for n in range(8):
        record = (await services.contributions.add(dataset, ALICE + n, example(n))).record
        await services.curation.decide(GUILD_A, record.id, ExampleStatus.APPROVED)
    first = await stats.stats(dataset)
    approximate = {e.model.model for e in first.comparison if e.approximate}
    assert approximate and "gpt-4o-mini" not in approximate
    await stats.settle()
    again = await stats.stats(dataset)
    assert not any(e.approximate for e in again.comparison)
    await stats.close()


async def test_an_opted_out_member_cannot_vote_and_their_votes_leave_the_tallies(services):
    dataset = await services.datasets.create(GUILD_A, "marv")
    added = await services.contributions.add(dataset, ALICE, example(1))
    await services.curation.vote(GUILD_A, added.record.id, BOB, 1)
    await services.curation.vote(GUILD_A, added.record.id, CAROL, 1)
    result = await services.privacy.opt_out(GUILD_A, BOB)
    assert (result.votes_deleted, result.voted_examples) == (1, (added.record.id,))
    review = await services.curation.review(GUILD_A, added.record.id)
    assert (review.tally.up, review.tally.down) == (1, 0)
    with pytest.raises(NotAllowed, match="opted out"):
        await services.curation.vote(GUILD_A, added.record.id, BOB, 1)
    await services.privacy.opt_in(GUILD_A, BOB)
    await services.curation.vote(GUILD_A, added.record.id, BOB, -1)


async def test_mydata_says_which_turns_of_anothers_capture_the_member_wrote(services):
    import json

    dataset = await services.datasets.create(GUILD_A, "marv")
    await services.privacy.opt_in(GUILD_A, BOB)
    captured = await services.contributions.add(
        dataset, ALICE, example(1, turns=2), source=ExampleSource.CAPTURE, authors={0: BOB, 2: BOB}
    )
    own = await services.contributions.add(dataset, BOB, example(2))
    data = json.loads(await services.privacy.my_data(GUILD_A, BOB))
    by_id = {e["id"]: e for e in data["examples"]}
    assert by_id[captured.record.id]["turns_you_wrote"] == [0, 2]
    assert by_id[captured.record.id]["contributed_by_you"] is False
    assert by_id[own.record.id]["contributed_by_you"] is True
    assert json.loads(await services.privacy.my_data(GUILD_B, BOB))["examples"] == []


async def test_stats_warn_when_approved_examples_disagree_on_the_system_prompt(store, services):
    dataset = await services.datasets.create(GUILD_A, "mixed", policy="as_written")
    ids = []
    for n, system in enumerate(["You are Marv.", "You are Marv.", "You are a pirate.", None]):
        added = await services.contributions.add(dataset, ALICE + n, example(n, system=system))
        await services.curation.decide(GUILD_A, added.record.id, ExampleStatus.APPROVED)
        ids.append(added.record.id)
    assert await store.examples.system_prompts(GUILD_A, dataset.id) == [
        ("You are Marv.", 2), ("", 1), ("You are a pirate.", 1)
    ]
    report = await services.stats.stats(dataset)
    assert report.prompt_warning is not None
    assert "3 different system prompts (1 have none)" in report.prompt_warning

    await services.curation.edit(GUILD_A, ids[2], example(2, system="You are Marv."))
    await services.contributions.remove(GUILD_A, ids[3], ALICE + 3, curator=False)
    assert await store.examples.system_prompts(GUILD_A, dataset.id) == [("You are Marv.", 3)]
    assert (await services.stats.stats(dataset)).prompt_warning is None
    chatted = await services.datasets.edit(GUILD_A, dataset.id, system_prompt="You are Marv!")
    warning = (await services.stats.stats(chatted)).prompt_warning
    assert warning is not None and "different system prompt than the dataset's" in warning
    included = await services.datasets.edit(GUILD_A, dataset.id, policy="include")
    assert (await services.stats.stats(included)).prompt_warning is None
    assert await store.examples.system_prompts(GUILD_B, dataset.id) == []
