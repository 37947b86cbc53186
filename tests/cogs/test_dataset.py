"""``/dataset``: admins create, edit, delete and pick the default; members list, read and
size up datasets; every reply is scoped to its server and pings nobody."""

from __future__ import annotations

from decimal import Decimal

import discord
import pytest

from bot.client.dataset_embeds import progress_bar, usd
from bot.dataset.cost import tier_for
from bot.dataset.examples import ChatExample
from bot.dataset.policy import SystemPromptPolicy
from storage.records import Dataset, ExampleStatus
from tests.bot.inprocess import running_tunecord
from tests.standins.discord import CommandError, P
from tests.storage.helpers import example

pytest_plugins = ("tests.standins.discord.fixtures",)

SUBCOMMANDS = {"create", "list", "info", "edit", "delete", "default", "stats", "export"}
ADMIN_COMMANDS = {
    "dataset create": {"name": "new"},
    "dataset edit": {"dataset": "marv", "policy": "omit"},
    "dataset delete": {"dataset": "marv"},
    "dataset default": {"dataset": "marv"},
}
PERMISSION_MESSAGE = "You need the Manage Server permission to use this command."
NOISY = "@everyone <@&{role}> hi"


@pytest.fixture
async def world(discord_server, tmp_path):
    guild = discord_server.create_guild("HQ", channels=("general", "reviews"))
    other = discord_server.create_guild("Elsewhere")
    managers = guild.create_role("managers", permissions=P.MANAGE_GUILD)
    mods = guild.create_role("mods", permissions=P.MANAGE_MESSAGES)
    people = {
        "alice": guild.add_member("alice"),
        "bob": guild.add_member("bob"),
        "mod": guild.add_member("mod", roles=[mods]),
        "manager": guild.add_member("manager", roles=[managers]),
        "stranger": other.add_member("stranger"),
    }
    async with running_tunecord(discord_server, tmp_path) as bot:
        yield guild, other, bot, people


def fields(message) -> dict[str, str]:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


async def reply_of(handle):
    """The message a deferred command answered with (its first follow-up)."""
    assert handle.deferred and handle.ephemeral
    message = await handle.next_followup()
    assert message.ephemeral
    return message


async def marv(bot, guild, **options) -> Dataset:
    options.setdefault("system_prompt", "You are Marv, a reluctant pirate.")
    return await bot.services.datasets.create(guild.id, "marv", **options)


async def contribute(bot, dataset, user_id, numbers, status=ExampleStatus.APPROVED) -> list[int]:
    """Examples numbered ``numbers`` from ``user_id``, then approved (or left ``status``)."""
    ids = []
    for n in numbers:
        added = await bot.services.contributions.add(dataset, user_id, example(n))
        if status is not ExampleStatus.PENDING:
            await bot.services.curation.decide(dataset.guild_id, added.record.id, status)
        ids.append(added.record.id)
    return ids


# -- registration -------------------------------------------------------------------------


async def test_dataset_commands_are_registered_with_their_options(world):
    guild, _, _, _ = world
    command = guild.server.command("dataset")
    assert command["contexts"] == [0]
    assert command.get("default_member_permissions") is None  # members use list/info/stats
    subs = {o["name"]: o for o in command["options"]}
    assert set(subs) == SUBCOMMANDS

    def options(sub: str) -> dict[str, dict]:
        return {o["name"]: o for o in subs[sub].get("options", [])}

    assert list(options("create")) == ["name", "system_prompt", "policy", "base_model"]
    assert options("create")["name"]["required"]
    policy = options("create")["policy"]
    assert [c["value"] for c in policy["choices"]] == ["include", "omit", "as_written"]
    assert options("create")["base_model"]["autocomplete"]
    assert list(options("edit")) == ["dataset", "system_prompt", "policy", "base_model"]
    assert options("list") == {}
    for sub in ("info", "edit", "stats", "export", "delete", "default"):
        assert options(sub)["dataset"]["autocomplete"], sub
        assert bool(options(sub)["dataset"].get("required")) == (sub in ("delete", "default"))
    stats = options("stats")
    assert list(stats) == ["dataset", "model", "epochs"]
    assert stats["model"]["autocomplete"]
    assert (stats["epochs"]["min_value"], stats["epochs"]["max_value"]) == (1, 50)


# -- create ------------------------------------------------------------------------------


CREATE_CASES = [
    ({"system_prompt": "Be Marv.", "policy": "include"}, SystemPromptPolicy.INCLUDE),
    ({"system_prompt": "Be Marv.", "policy": "omit"}, SystemPromptPolicy.OMIT),
    ({"policy": "omit"}, SystemPromptPolicy.OMIT),
    ({"system_prompt": "Be Marv.", "policy": "as_written"}, SystemPromptPolicy.AS_WRITTEN),
    ({"system_prompt": "Be Marv."}, SystemPromptPolicy.INCLUDE),  # the default with a prompt
    ({}, SystemPromptPolicy.AS_WRITTEN),  # the default without one
]


async def test_an_admin_creates_a_dataset_with_each_policy(world):
    guild, _, bot, people = world
    for number, (options, policy) in enumerate(CREATE_CASES):
        name = f"marv {number}"
        handle = await people["manager"].slash("dataset create", name=name, **options)
        reply = await reply_of(handle)
        assert reply.content.startswith(
            f"Created the dataset **{name}**: policy `{policy.value}`, no base model."
        )
        stored = await bot.services.datasets.resolve(guild.id, name)
        assert stored.policy == policy
        assert stored.system_prompt == options.get("system_prompt")
    assert len(await bot.services.datasets.all(guild.id)) == len(CREATE_CASES)


async def test_create_with_a_base_model_stores_the_catalogue_name(world):
    guild, _, bot, people = world
    choices = await people["manager"].autocomplete(
        "dataset create", "base_model", "4o-mi", name="x"
    )
    assert [c["value"] for c in choices] == ["gpt-4o-mini-2024-07-18"]
    handle = await people["manager"].slash("dataset create", name="marv", base_model="gpt-4o-mini")
    assert "base model `gpt-4o-mini-2024-07-18`" in (await reply_of(handle)).content
    [stored] = await bot.services.datasets.all(guild.id)
    assert stored.base_model == "gpt-4o-mini-2024-07-18"


INVALID_CREATES = [
    (
        {"name": "marv", "policy": "include"},
        "The policy `include` puts the dataset's system prompt into every example: "
        "give a `system_prompt`, or choose `omit` or `as_written`.",
    ),
    ({"name": "marv", "base_model": "gpt-9"}, "Unknown base model `gpt-9`. Known models: "),
    ({"name": "   "}, "A dataset needs a name."),
    ({"name": "x" * 51}, "A dataset name can be at most 50 characters."),
    ({"name": "taken"}, "This server already has a dataset named `taken`; choose another name."),
    (
        {"name": "long", "system_prompt": "y" * 4001},
        "The system prompt can be at most 4000 characters.",
    ),
]


async def test_create_refuses_what_is_invalid_with_a_specific_message(world):
    guild, _, bot, people = world
    await bot.services.datasets.create(guild.id, "taken")
    for options, message in INVALID_CREATES:
        reply = await reply_of(await people["manager"].slash("dataset create", **options))
        assert reply.content.startswith(message), options
    assert [d.name for d in await bot.services.datasets.all(guild.id)] == ["taken"]


async def test_a_policy_outside_the_choices_cannot_be_sent(world):
    _, _, _, people = world
    with pytest.raises(CommandError, match="only accepts"):
        await people["manager"].slash("dataset create", name="marv", policy="sometimes")


# -- list and info -------------------------------------------------------------------------


async def test_list_shows_every_dataset_with_counts_and_the_default(world):
    guild, other, bot, people = world
    reply = await reply_of(await people["alice"].slash("dataset list"))
    assert reply.content == (
        "This server has no dataset yet. An admin can create one with `/dataset create`."
    )
    dataset = await marv(bot, guild)
    await bot.services.datasets.create(guild.id, "atlas")
    await bot.services.datasets.create(other.id, "secret")
    await contribute(bot, dataset, people["alice"].id, range(3))
    await contribute(bot, dataset, people["bob"].id, [10], ExampleStatus.PENDING)
    await contribute(bot, dataset, people["bob"].id, [11], ExampleStatus.REJECTED)
    await bot.services.datasets.set_default(guild.id, "marv")

    for who in ("alice", "manager"):
        reply = await reply_of(await people[who].slash("dataset list"))
        [embed] = reply.embeds
        assert embed["title"] == "Datasets of HQ"
        assert embed["description"].splitlines() == [
            "**atlas**: 0 approved · 0 pending · 0 rejected",
            "**marv** (default): 3 approved · 1 pending · 1 rejected",
        ]


async def test_info_shows_the_settings_counts_and_whether_it_is_the_default(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild, base_model="gpt-4.1-nano")
    await contribute(bot, dataset, people["alice"].id, range(2))
    await contribute(bot, dataset, people["bob"].id, [7], ExampleStatus.PENDING)
    for who in ("alice", "manager"):
        shown = fields(await reply_of(await people[who].slash("dataset info", dataset="marv")))
        created = int(dataset.created_at.timestamp())
        assert shown == {
            "System prompt": "You are Marv, a reluctant pirate.",
            "Policy": "`include`: the dataset's system prompt goes first in every example",
            "Base model": "gpt-4.1-nano-2025-04-14",
            "Created": f"<t:{created}:D>",
            "Default": "no",
            "Approved": "2",
            "Pending": "1",
            "Rejected": "0",
        }
    # the only dataset is the one meant when none is named
    shown = fields(await reply_of(await people["alice"].slash("dataset info")))
    assert shown["Approved"] == "2"


async def test_without_a_name_or_default_several_datasets_ask_for_a_choice(world):
    guild, _, bot, people = world
    reply = await reply_of(await people["alice"].slash("dataset info"))
    assert reply.content.startswith("This server has no dataset yet.")
    await marv(bot, guild)
    await bot.services.datasets.create(guild.id, "atlas")
    for command in ("dataset info", "dataset stats"):
        reply = await reply_of(await people["alice"].slash(command))
        assert reply.content.startswith("This server has 2 datasets and no default")


async def test_a_misspelt_name_is_not_found(world):
    guild, _, bot, people = world
    await marv(bot, guild)
    reply = await reply_of(await people["alice"].slash("dataset info", dataset="mrav"))
    assert reply.content == (
        "There is no dataset named `mrav` in this server. `/dataset list` shows them."
    )


# -- edit --------------------------------------------------------------------------------


async def test_an_admin_edits_and_clears_settings(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    admin = people["manager"]
    reply = await reply_of(
        await admin.slash(
            "dataset edit",
            dataset="marv",
            system_prompt="Be brief.",
            policy="omit",
            base_model="gpt-4o",
        )
    )
    assert reply.content == (
        "Updated **marv**: policy `omit`, a system prompt of 9 characters, "
        "base model `gpt-4o-2024-08-06`."
    )
    stored = await bot.services.datasets.get(guild.id, dataset.id)
    assert (stored.system_prompt, stored.policy, stored.base_model) == (
        "Be brief.",
        SystemPromptPolicy.OMIT,
        "gpt-4o-2024-08-06",
    )
    reply = await reply_of(await admin.slash("dataset edit", system_prompt="-", base_model="-"))
    assert reply.content == "Updated **marv**: policy `omit`, no system prompt, no base model."
    stored = await bot.services.datasets.get(guild.id, dataset.id)
    assert (stored.system_prompt, stored.base_model) == (None, None)


async def test_edit_refuses_nothing_to_change_and_an_include_without_a_prompt(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    admin = people["manager"]
    reply = await reply_of(await admin.slash("dataset edit", dataset="marv"))
    assert reply.ephemeral
    assert reply.content.startswith("Nothing to change: give a `system_prompt`")
    reply = await reply_of(await admin.slash("dataset edit", system_prompt="-"))
    assert reply.content.startswith("The policy `include` puts the dataset's system prompt")
    reply = await reply_of(await admin.slash("dataset edit", base_model="gpt-9"))
    assert reply.content.startswith("Unknown base model `gpt-9`.")
    assert await bot.services.datasets.get(guild.id, dataset.id) == dataset


# -- delete ------------------------------------------------------------------------------


async def confirmation(admin, name: str):
    message = await reply_of(await admin.slash("dataset delete", dataset=name))
    assert [c["label"] for c in message.interactive_components()] == ["Delete", "Cancel"]
    return message


async def test_delete_asks_first_and_cancel_deletes_nothing(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    await contribute(bot, dataset, people["alice"].id, range(3))
    await contribute(bot, dataset, people["bob"].id, [9], ExampleStatus.PENDING)
    admin = people["manager"]
    message = await confirmation(admin, "marv")
    assert message.content.startswith(
        "Delete **marv**? Its 4 examples (3 approved, 1 pending, 0 rejected), their votes "
        "and their review posts will be gone for good."
    )
    clicked = await admin.click(message, "Cancel")
    assert clicked.response_name == "UPDATE_MESSAGE"
    assert clicked.message.content == "Nothing was deleted."
    assert clicked.message.interactive_components() == []
    assert await bot.services.datasets.all(guild.id) == [dataset]


async def test_delete_removes_the_dataset_its_examples_and_review_posts(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    ids = await contribute(bot, dataset, people["alice"].id, range(3))
    reviews = guild.channel("reviews")
    post = await guild.bot.send(reviews, "review post of the first example")
    assert await bot.storage.review_posts.record(guild.id, ids[0], reviews.id, post.id)
    await bot.services.datasets.set_default(guild.id, "marv")
    admin = people["manager"]
    message = await confirmation(admin, "marv")
    clicked = await admin.click(message, "Delete")
    assert clicked.deferred
    edited = await clicked.next_edit()
    assert edited.id == message.id
    assert edited.content == "Deleted **marv** and its 3 examples. Removed 1 review posts."
    assert edited.interactive_components() == []
    assert await bot.services.datasets.all(guild.id) == []
    for example_id in ids:
        assert await bot.storage.examples.get(guild.id, example_id) is None
    assert guild.server.world.messages[post.id].deleted
    assert await bot.services.datasets.default(guild.id) is None


async def test_only_the_admin_who_asked_and_still_an_admin_may_confirm(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    admin = people["manager"]
    message = await confirmation(admin, "marv")
    # the confirmation is ephemeral: alice is not shown it; a forged click is refused anyway
    refused = await people["alice"].click(message, "Delete", force=True)
    assert refused.content == "Only the admin who asked for this deletion can answer it."
    assert refused.ephemeral
    admin.remove_roles(guild.role("managers"))
    refused = await admin.click(message, "Delete")
    assert refused.content == PERMISSION_MESSAGE
    assert refused.ephemeral and not refused.deferred
    assert await bot.services.datasets.all(guild.id) == [dataset]
    assert [c["label"] for c in message.interactive_components()] == ["Delete", "Cancel"]


# -- default -----------------------------------------------------------------------------


async def test_the_default_dataset_is_used_when_none_is_named(world):
    guild, _, bot, people = world
    await bot.services.datasets.create(guild.id, "atlas")
    dataset = await marv(bot, guild)
    await contribute(bot, dataset, people["alice"].id, range(2))
    admin = people["manager"]
    reply = await reply_of(await admin.slash("dataset default", dataset="marv"))
    assert reply.content == (
        "**marv** is now this server's default dataset: commands use it when no `dataset` is given."
    )
    shown = fields(await reply_of(await people["alice"].slash("dataset info")))
    assert (shown["Default"], shown["Approved"]) == ("yes", "2")
    shown = fields(await reply_of(await people["alice"].slash("dataset stats")))
    assert shown["Approved"] == "2"
    reply = await reply_of(await admin.slash("dataset edit", policy="omit"))
    assert reply.content.startswith("Updated **marv**: policy `omit`")
    reply = await reply_of(await admin.slash("dataset default", dataset="nope"))
    assert reply.content.startswith("There is no dataset named `nope` in this server.")
    assert (await bot.services.datasets.default(guild.id)).name == "marv"


# -- autocomplete ---------------------------------------------------------------------------


async def test_autocomplete_offers_this_servers_datasets_only(world):
    guild, other, bot, people = world
    await marv(bot, guild)
    await bot.services.datasets.create(guild.id, "maps")
    await bot.services.datasets.create(guild.id, "atlas")
    await bot.services.datasets.create(other.id, "mast")
    choices = await people["alice"].autocomplete("dataset info", "dataset", "ma")
    assert [c["value"] for c in choices] == ["maps", "marv"]
    choices = await people["manager"].autocomplete("dataset delete", "dataset", "")
    assert [c["value"] for c in choices] == ["atlas", "maps", "marv"]
    choices = await people["stranger"].autocomplete("dataset stats", "dataset", "")
    assert [c["value"] for c in choices] == ["mast"]


# -- stats -------------------------------------------------------------------------------


def test_the_progress_bar_fills_toward_the_next_tier():
    assert progress_bar(tier_for(0)) == "▱▱▱▱▱▱▱▱▱▱ 0/10 to minimum"
    assert progress_bar(tier_for(23)) == "▰▰▰▱▱▱▱▱▱▱ 23/50 to nominal"
    assert progress_bar(tier_for(499)) == "▰▰▰▰▰▰▰▰▰▱ 499/500 to expert"
    assert progress_bar(tier_for(1000)) == "▰▰▰▰▰▰▰▰▰▰ top tier"


def test_costs_read_as_dollars_and_cents():
    assert usd(Decimal("1.234")) == "$1.23"
    assert usd(Decimal("1.235")) == "$1.24"
    assert usd(Decimal("1234.5")) == "$1,234.50"
    assert usd(Decimal("0")) == "$0.00"
    assert usd(Decimal("0.001")) == "under $0.01"


async def test_stats_show_counts_tier_tokens_cost_and_contributors(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild, base_model="gpt-4o-mini")
    alice, bob, mod = people["alice"], people["bob"], people["mod"]
    await contribute(bot, dataset, alice.id, range(8))
    await contribute(bot, dataset, bob.id, range(100, 103))
    await contribute(bot, dataset, mod.id, [200])
    await contribute(bot, dataset, bob.id, [300, 301], ExampleStatus.PENDING)
    await contribute(bot, dataset, mod.id, [400], ExampleStatus.REJECTED)

    handle = await bob.slash("dataset stats", dataset="marv")
    shown = fields(await reply_of(handle))
    report = await bot.services.stats.stats(dataset)
    counts = report.counts
    assert (counts.approved.examples, counts.pending.examples, counts.rejected.examples) == (
        12,
        2,
        1,
    )
    assert report.epochs == 8  # 100 // 12: OpenAI's heuristic for small datasets
    billed = counts.approved.billed_tokens
    assert billed > 0 and report.chosen is not None
    cost = report.chosen.estimate.cost_rounded()
    assert shown["Approved"] == "12"
    assert shown["Pending"] == "2"
    assert shown["Rejected"] == "1"
    assert shown["Tier"] == "**minimum**\n▱▱▱▱▱▱▱▱▱▱ 12/50 to nominal"
    assert shown["Billed tokens"] == f"{billed:,}"
    assert shown["Epochs"] == "8 (auto)"
    assert report.chosen.estimate.cost_usd == Decimal(3) * billed * 8 / 1_000_000
    assert cost == Decimal("0.01")  # 504 tokens x 8 epochs at $3.00 per 1M = $0.0121
    assert shown["Estimated cost"] == (
        f"**$0.01** on `gpt-4o-mini-2024-07-18`\n"
        f"{billed:,} tokens × 8 epochs = {billed * 8:,} trained tokens at $3.00 per 1M"
    )
    cheapest = shown["Cheapest models"].splitlines()
    assert len(cheapest) == 5
    assert cheapest[0] == "`smollm2-135m-instruct`: $0.00"
    assert [line.split("`")[1] for line in cheapest] == [
        e.model.model for e in report.comparison[:5]
    ]
    assert "`gpt-4o-mini-2024-07-18`: " in shown["Cheapest models"]
    assert "(chosen)" in next(c for c in cheapest if "gpt-4o-mini" in c)
    assert shown["Top contributors"] == (
        f"1. <@{alice.id}>: 8 approved\n2. <@{bob.id}>: 3 approved\n3. <@{mod.id}>: 1 approved"
    )
    assert "Warnings" not in shown


async def test_stats_for_a_chosen_model_and_epochs(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    await contribute(bot, dataset, people["alice"].id, range(5))
    handle = await people["alice"].slash("dataset stats", model="gpt-4o", epochs=50)
    shown = fields(await reply_of(handle))
    report = await bot.services.stats.stats(dataset, model="gpt-4o", epochs=50)
    assert report.chosen is not None
    billed = report.chosen.billed_tokens
    assert shown["Epochs"] == "50"
    assert shown["Billed tokens"] == f"{billed:,}"
    assert shown["Estimated cost"].startswith(
        f"**${report.chosen.estimate.cost_rounded():,.2f}** on `gpt-4o-2024-08-06`\n"
        f"{billed:,} tokens × 50 epochs = {billed * 50:,} trained tokens at $25.00 per 1M"
    )
    assert shown["Tier"] == "**none**\n▰▰▰▰▰▱▱▱▱▱ 5/10 to minimum"
    assert shown["Warnings"] == "⚠ A fine-tune needs at least 10 approved examples."


async def test_stats_without_a_model_say_so_and_still_compare(world):
    guild, _, bot, people = world
    await marv(bot, guild)
    shown = fields(await reply_of(await people["alice"].slash("dataset stats")))
    assert shown["Estimated cost"].startswith("No model chosen: pass `model`")
    assert len(shown["Cheapest models"].splitlines()) == 5
    assert shown["Approved"] == "0"
    assert shown["Billed tokens"] == "0"
    assert shown["Epochs"] == "3 (auto)"
    assert shown["Warnings"] == "⚠ No approved examples yet: there is nothing to train on."
    assert shown["Top contributors"] == "nobody yet"


async def test_stats_refuse_an_unknown_model(world):
    guild, _, bot, people = world
    await marv(bot, guild)
    reply = await reply_of(await people["alice"].slash("dataset stats", model="gpt-9"))
    assert reply.content.startswith("Unknown model `gpt-9`. Known models: ")
    assert not reply.embeds


async def test_stats_warn_about_examples_over_the_context(world):
    guild, _, bot, people = world
    dataset = await marv(bot, guild, base_model="gpt-4o-mini")  # trains on up to 65,536
    long = ChatExample.from_pairs([("word " * 17_000, "ok")])  # over gpt-3.5-turbo's 16,385
    added = await bot.services.contributions.add(dataset, people["alice"].id, long)
    await bot.services.curation.decide(guild.id, added.record.id, ExampleStatus.APPROVED)
    handle = await people["alice"].slash("dataset stats", model="gpt-3.5-turbo")
    shown = fields(await reply_of(handle))
    report = await bot.services.stats.stats(dataset, model="gpt-3.5-turbo")
    assert report.over_context and report.counts.approved.billed_tokens == 16_385
    assert shown["Billed tokens"] == "16,385"
    assert shown["Warnings"].splitlines() == [
        "⚠ A fine-tune needs at least 10 approved examples.",
        "⚠ Some approved examples are longer than the model's training context "
        "(16,385 tokens): they are truncated, and billed at the cap.",
    ]


# -- scope and permissions -------------------------------------------------------------------


async def test_another_servers_dataset_is_not_found(world):
    guild, other, bot, people = world
    secret = await bot.services.datasets.create(other.id, "secret", system_prompt="hidden")
    await marv(bot, guild)
    for command, options in [
        ("dataset info", {}),
        ("dataset stats", {}),
        ("dataset edit", {"policy": "omit"}),
        ("dataset delete", {}),
        ("dataset default", {}),
    ]:
        reply = await reply_of(await people["manager"].slash(command, dataset="secret", **options))
        assert reply.content == (
            "There is no dataset named `secret` in this server. `/dataset list` shows them."
        ), command
        assert not reply.embeds and not reply.interactive_components()
    assert await bot.services.datasets.get(other.id, secret.id) == secret
    assert await bot.services.datasets.default(other.id) is None
    assert await bot.services.datasets.default(guild.id) is None


@pytest.mark.parametrize("who", ["alice", "mod"])
async def test_a_member_forcing_an_admin_command_is_refused_and_nothing_changes(world, who):
    guild, _, bot, people = world
    dataset = await marv(bot, guild)
    for command, options in sorted(ADMIN_COMMANDS.items()):
        handle = await people[who].slash(command, force=True, **options)
        assert handle.content == PERMISSION_MESSAGE, command
        assert handle.ephemeral and not handle.deferred
    assert await bot.services.datasets.all(guild.id) == [dataset]
    assert await bot.services.datasets.default(guild.id) is None


async def test_members_use_list_info_and_stats(world):
    guild, _, bot, people = world
    await marv(bot, guild)
    for who in ("alice", "mod"):
        for command in ("dataset list", "dataset info", "dataset stats"):
            reply = await reply_of(await people[who].slash(command))
            assert reply.embeds, (who, command)


async def test_names_and_prompts_with_mentions_ping_nobody(world):
    guild, _, bot, people = world
    role = guild.create_role("crew")
    noisy = NOISY.format(role=role.id)
    admin = people["manager"]
    replies = [
        await reply_of(
            await admin.slash("dataset create", name=noisy, system_prompt=noisy, policy="include")
        )
    ]
    assert replies[0].content.startswith("Created the dataset **@everyone <@&")
    dataset = (await bot.services.datasets.all(guild.id))[0]
    await contribute(bot, dataset, people["alice"].id, range(2))
    for command, options in [
        ("dataset list", {}),
        ("dataset info", {"dataset": noisy}),
        ("dataset stats", {"dataset": noisy}),
        ("dataset edit", {"dataset": noisy, "system_prompt": noisy + "!"}),
        ("dataset default", {"dataset": noisy}),
        ("dataset info", {"dataset": "@everyone"}),  # not found, quoted back
        ("dataset delete", {"dataset": noisy}),
    ]:
        replies.append(await reply_of(await admin.slash(command, **options)))
    clicked = await admin.click(replies[-1], "Delete")
    replies.append(await clicked.next_edit())
    assert replies[-1].content.startswith("Deleted **@everyone <@&")
    for reply in replies:
        assert not reply.pings, reply.content
        assert reply.allowed_mentions == {"parse": []} or reply.allowed_mentions is None
    stats_embed = next(r for r in replies if r.embeds and "Stats" in r.embeds[0]["title"])
    assert fields(stats_embed)["Top contributors"].startswith(f"1. <@{people['alice'].id}>")
    assert discord.utils.escape_markdown(noisy) in replies[0].content
