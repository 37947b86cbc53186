"""The schema, as an append-only list of migrations, and the runner that applies them.

Rules: never edit or reorder a migration that has shipped; add a new one with the next
version. The runner records each applied migration (version, name, sha256 of its SQL) in
``schema_migrations`` and refuses to start on a database whose record disagrees with this
list (an edited migration, or a database written by newer code). A fresh database and one
created at an earlier version end in the same schema, because both run the same SQL in the
same order (``tests/storage/test_migrations.py`` compares their ``sqlite_master``).

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction with its record, so a crash
mid-migration leaves the database at the previous version. A future migration that must
rebuild a table with foreign keys off needs its own runner support (``PRAGMA foreign_keys``
cannot change inside a transaction).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiosqlite

from storage.errors import MigrationError


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    def statements(self) -> Iterator[str]:
        """The SQL split into complete statements (trigger bodies kept whole)."""
        pending: list[str] = []
        for line in self.sql.splitlines(keepends=True):
            pending.append(line)
            text = "".join(pending)
            if sqlite3.complete_statement(text):
                yield text.strip()
                pending.clear()
        rest = "".join(pending).strip()
        if rest and not all(
            part.strip().startswith("--") or not part.strip() for part in rest.splitlines()
        ):
            raise MigrationError(f"migration {self.version} ends with an incomplete statement")


_CORE = """
CREATE TABLE guild_settings (
    guild_id INTEGER PRIMARY KEY,
    default_base_model TEXT,
    provider TEXT,
    chat_enabled INTEGER NOT NULL DEFAULT 0 CHECK (chat_enabled IN (0, 1)),
    capture_enabled INTEGER NOT NULL DEFAULT 0 CHECK (capture_enabled IN (0, 1)),
    admin_role_id INTEGER,
    curator_role_id INTEGER,
    monthly_budget_micro_usd INTEGER CHECK (monthly_budget_micro_usd >= 0),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    system_prompt TEXT,
    policy TEXT NOT NULL DEFAULT 'as_written'
        CHECK (policy IN ('include', 'omit', 'as_written')),
    base_model TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (guild_id, name),
    UNIQUE (id, guild_id)
);

-- example_json is the example's canonical ChatExample.to_json() line.
CREATE TABLE examples (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    dataset_id INTEGER NOT NULL,
    example_json TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    contributor_id INTEGER,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected')),
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (dataset_id, guild_id) REFERENCES datasets (id, guild_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX examples_dataset_hash ON examples (dataset_id, content_hash);
-- Unique (trivially, id is) so that example_tokens can reference these three columns.
CREATE UNIQUE INDEX examples_dataset_status ON examples (dataset_id, status, id);
CREATE INDEX examples_dataset ON examples (dataset_id);
CREATE INDEX examples_contributor ON examples (guild_id, contributor_id);
CREATE TRIGGER examples_stay_put BEFORE UPDATE OF guild_id, dataset_id ON examples
WHEN NEW.guild_id IS NOT OLD.guild_id OR NEW.dataset_id IS NOT OLD.dataset_id
BEGIN
    SELECT RAISE(ABORT, 'an example cannot move to another dataset or guild');
END;

CREATE TABLE votes (
    example_id INTEGER NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    value INTEGER NOT NULL CHECK (value IN (-1, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (example_id, user_id)
) WITHOUT ROWID;
CREATE INDEX votes_user ON votes (guild_id, user_id);

CREATE TABLE consents (
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    granted INTEGER NOT NULL CHECK (granted IN (0, 1)),
    granted_at TEXT,
    revoked_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;
"""

# Token counts per (example, encoding), and per-dataset totals kept by triggers in the same
# transaction as every insert, delete and status change, so statistics are a lookup of a
# few rows instead of an aggregate over a million. dataset_id and status are copies of the
# example's, held equal by the composite foreign key (ON UPDATE CASCADE moves a row's
# counts when its example changes status).
_TOKENS_AND_STATS = """
CREATE TABLE example_tokens (
    example_id INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    tokens INTEGER NOT NULL CHECK (tokens >= 0),
    billed_tokens INTEGER NOT NULL CHECK (billed_tokens >= 0),
    dataset_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (example_id, encoding),
    FOREIGN KEY (dataset_id, status, example_id) REFERENCES examples (dataset_id, status, id)
        ON UPDATE CASCADE ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE dataset_status_counts (
    dataset_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    examples INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, status)
) WITHOUT ROWID;

CREATE TABLE dataset_token_totals (
    dataset_id INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    status TEXT NOT NULL,
    examples INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    billed_tokens INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, encoding, status)
) WITHOUT ROWID;

INSERT INTO dataset_status_counts (dataset_id, status, examples)
SELECT dataset_id, status, count(*) FROM examples GROUP BY dataset_id, status;

CREATE TRIGGER examples_count_insert AFTER INSERT ON examples
BEGIN
    INSERT INTO dataset_status_counts (dataset_id, status, examples)
    VALUES (NEW.dataset_id, NEW.status, 1)
    ON CONFLICT (dataset_id, status) DO UPDATE SET examples = examples + 1;
END;

CREATE TRIGGER examples_count_delete AFTER DELETE ON examples
BEGIN
    UPDATE dataset_status_counts SET examples = examples - 1
    WHERE dataset_id = OLD.dataset_id AND status = OLD.status;
END;

CREATE TRIGGER examples_count_status AFTER UPDATE OF status ON examples
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE dataset_status_counts SET examples = examples - 1
    WHERE dataset_id = OLD.dataset_id AND status = OLD.status;
    INSERT INTO dataset_status_counts (dataset_id, status, examples)
    VALUES (NEW.dataset_id, NEW.status, 1)
    ON CONFLICT (dataset_id, status) DO UPDATE SET examples = examples + 1;
END;

CREATE TRIGGER example_tokens_count_insert AFTER INSERT ON example_tokens
BEGIN
    INSERT INTO dataset_token_totals
        (dataset_id, encoding, status, examples, tokens, billed_tokens)
    VALUES (NEW.dataset_id, NEW.encoding, NEW.status, 1, NEW.tokens, NEW.billed_tokens)
    ON CONFLICT (dataset_id, encoding, status) DO UPDATE SET
        examples = examples + 1,
        tokens = tokens + excluded.tokens,
        billed_tokens = billed_tokens + excluded.billed_tokens;
END;

CREATE TRIGGER example_tokens_count_delete AFTER DELETE ON example_tokens
BEGIN
    UPDATE dataset_token_totals SET
        examples = examples - 1,
        tokens = tokens - OLD.tokens,
        billed_tokens = billed_tokens - OLD.billed_tokens
    WHERE dataset_id = OLD.dataset_id AND encoding = OLD.encoding AND status = OLD.status;
END;

CREATE TRIGGER example_tokens_count_update AFTER UPDATE ON example_tokens
BEGIN
    UPDATE dataset_token_totals SET
        examples = examples - 1,
        tokens = tokens - OLD.tokens,
        billed_tokens = billed_tokens - OLD.billed_tokens
    WHERE dataset_id = OLD.dataset_id AND encoding = OLD.encoding AND status = OLD.status;
    INSERT INTO dataset_token_totals
        (dataset_id, encoding, status, examples, tokens, billed_tokens)
    VALUES (NEW.dataset_id, NEW.encoding, NEW.status, 1, NEW.tokens, NEW.billed_tokens)
    ON CONFLICT (dataset_id, encoding, status) DO UPDATE SET
        examples = examples + 1,
        tokens = tokens + excluded.tokens,
        billed_tokens = billed_tokens + excluded.billed_tokens;
END;

CREATE TRIGGER datasets_drop_stats AFTER DELETE ON datasets
BEGIN
    DELETE FROM dataset_status_counts WHERE dataset_id = OLD.id;
    DELETE FROM dataset_token_totals WHERE dataset_id = OLD.id;
END;
"""

_JOBS_AND_MODELS = """
CREATE TABLE fine_tune_jobs (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    dataset_id INTEGER REFERENCES datasets (id) ON DELETE SET NULL,
    provider TEXT NOT NULL,
    provider_job_id TEXT,
    provider_file_id TEXT,
    model TEXT NOT NULL,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    fine_tuned_model TEXT,
    estimated_cost_micro_usd INTEGER,
    estimated_tokens INTEGER,
    trained_tokens INTEGER,
    event_cursor TEXT,
    error TEXT,
    requested_by INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX fine_tune_jobs_guild ON fine_tune_jobs (guild_id, created_at);
CREATE INDEX fine_tune_jobs_dataset ON fine_tune_jobs (dataset_id);
CREATE INDEX fine_tune_jobs_provider_job ON fine_tune_jobs (guild_id, provider, provider_job_id);

CREATE TABLE active_models (
    guild_id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    system_prompt TEXT,
    job_id INTEGER REFERENCES fine_tune_jobs (id) ON DELETE SET NULL,
    activated_at TEXT NOT NULL
);
CREATE INDEX active_models_job ON active_models (job_id);

-- Money is stored as integer micro-dollars so sums are exact.
CREATE TABLE spend_ledger (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    job_id INTEGER REFERENCES fine_tune_jobs (id) ON DELETE SET NULL,
    amount_micro_usd INTEGER NOT NULL,
    kind TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX spend_ledger_guild ON spend_ledger (guild_id, created_at);
CREATE INDEX spend_ledger_job ON spend_ledger (job_id);
"""

_CHAT_CHANNELS = """
CREATE TABLE chat_channels (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    added_by INTEGER,
    added_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
) WITHOUT ROWID;
"""

_GUILD_REVIEW_SETTINGS = """
ALTER TABLE guild_settings ADD COLUMN review_channel_id INTEGER;
ALTER TABLE guild_settings ADD COLUMN vote_threshold INTEGER NOT NULL DEFAULT 3
    CHECK (vote_threshold BETWEEN 1 AND 100);
ALTER TABLE guild_settings ADD COLUMN max_pending_per_member INTEGER NOT NULL DEFAULT 20
    CHECK (max_pending_per_member BETWEEN 1 AND 1000);
"""

# The hash of the command tree last synced per (application, scope); guild_id 0 is global.
# The bot re-syncs only when its tree changed, to spare Discord's sync rate limit.
_COMMAND_SYNCS = """
CREATE TABLE command_syncs (
    application_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    payload_hash TEXT NOT NULL,
    synced_at TEXT NOT NULL,
    PRIMARY KEY (application_id, guild_id)
) WITHOUT ROWID;
"""

# Who wrote each turn of an example (a capture may quote several members), the review post
# of each example (its buttons keep working after a restart), the guild's default dataset
# and how many messages of a reply chain a capture follows.
_AUTHORS_REVIEWS_DEFAULTS = """
CREATE TABLE example_authors (
    example_id INTEGER NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    turn INTEGER NOT NULL CHECK (turn >= 0),
    user_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    PRIMARY KEY (example_id, turn)
) WITHOUT ROWID;
CREATE INDEX example_authors_user ON example_authors (guild_id, user_id);

CREATE TABLE review_posts (
    example_id INTEGER PRIMARY KEY REFERENCES examples (id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    posted_at TEXT NOT NULL
);
CREATE INDEX review_posts_message ON review_posts (guild_id, message_id);

-- Examples per (dataset, contributor, status), kept by triggers like dataset_status_counts:
-- the top contributors and a member's pending count are lookups at any dataset size.
CREATE TABLE dataset_contributor_counts (
    dataset_id INTEGER NOT NULL,
    contributor_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    examples INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, contributor_id, status)
) WITHOUT ROWID;
CREATE INDEX dataset_contributor_counts_top
    ON dataset_contributor_counts (dataset_id, status, examples);

INSERT INTO dataset_contributor_counts (dataset_id, contributor_id, status, examples)
SELECT dataset_id, contributor_id, status, count(*) FROM examples
WHERE contributor_id IS NOT NULL GROUP BY dataset_id, contributor_id, status;

CREATE TRIGGER examples_contributor_insert AFTER INSERT ON examples
WHEN NEW.contributor_id IS NOT NULL
BEGIN
    INSERT INTO dataset_contributor_counts (dataset_id, contributor_id, status, examples)
    VALUES (NEW.dataset_id, NEW.contributor_id, NEW.status, 1)
    ON CONFLICT (dataset_id, contributor_id, status) DO UPDATE SET examples = examples + 1;
END;

CREATE TRIGGER examples_contributor_delete AFTER DELETE ON examples
WHEN OLD.contributor_id IS NOT NULL
BEGIN
    UPDATE dataset_contributor_counts SET examples = examples - 1
    WHERE dataset_id = OLD.dataset_id AND contributor_id = OLD.contributor_id
    AND status = OLD.status;
END;

CREATE TRIGGER examples_contributor_status AFTER UPDATE OF status ON examples
WHEN NEW.status IS NOT OLD.status AND NEW.contributor_id IS NOT NULL
BEGIN
    UPDATE dataset_contributor_counts SET examples = examples - 1
    WHERE dataset_id = OLD.dataset_id AND contributor_id = OLD.contributor_id
    AND status = OLD.status;
    INSERT INTO dataset_contributor_counts (dataset_id, contributor_id, status, examples)
    VALUES (NEW.dataset_id, NEW.contributor_id, NEW.status, 1)
    ON CONFLICT (dataset_id, contributor_id, status) DO UPDATE SET examples = examples + 1;
END;

CREATE TRIGGER datasets_drop_contributor_counts AFTER DELETE ON datasets
BEGIN
    DELETE FROM dataset_contributor_counts WHERE dataset_id = OLD.id;
END;

ALTER TABLE guild_settings ADD COLUMN default_dataset_id INTEGER;
ALTER TABLE guild_settings ADD COLUMN capture_depth INTEGER NOT NULL DEFAULT 6
    CHECK (capture_depth BETWEEN 2 AND 25);
"""

# Approved (and other) examples per (dataset, status, system prompt), kept by triggers: the
# stats warn when the examples of a dataset disagree on their system prompt, at any size.
# The prompt is the first message's content when its role is system, '' when there is none.
_SYSTEM_PROMPT_COUNTS = """
CREATE TABLE dataset_system_prompts (
    dataset_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    examples INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, status, prompt)
) WITHOUT ROWID;

INSERT INTO dataset_system_prompts (dataset_id, status, prompt, examples)
SELECT dataset_id, status,
    coalesce(CASE WHEN json_extract(example_json, '$.messages[0].role') = 'system'
        THEN json_extract(example_json, '$.messages[0].content') END, ''),
    count(*)
FROM examples GROUP BY 1, 2, 3;

CREATE TRIGGER examples_prompt_insert AFTER INSERT ON examples
BEGIN
    INSERT INTO dataset_system_prompts (dataset_id, status, prompt, examples)
    VALUES (NEW.dataset_id, NEW.status,
        coalesce(CASE WHEN json_extract(NEW.example_json, '$.messages[0].role') = 'system'
            THEN json_extract(NEW.example_json, '$.messages[0].content') END, ''), 1)
    ON CONFLICT (dataset_id, status, prompt) DO UPDATE SET examples = examples + 1;
END;

CREATE TRIGGER examples_prompt_delete AFTER DELETE ON examples
BEGIN
    UPDATE dataset_system_prompts SET examples = examples - 1
    WHERE dataset_id = OLD.dataset_id AND status = OLD.status
    AND prompt = coalesce(CASE WHEN json_extract(OLD.example_json, '$.messages[0].role') = 'system'
        THEN json_extract(OLD.example_json, '$.messages[0].content') END, '');
END;

CREATE TRIGGER examples_prompt_update AFTER UPDATE OF status, example_json ON examples
BEGIN
    UPDATE dataset_system_prompts SET examples = examples - 1
    WHERE dataset_id = OLD.dataset_id AND status = OLD.status
    AND prompt = coalesce(CASE WHEN json_extract(OLD.example_json, '$.messages[0].role') = 'system'
        THEN json_extract(OLD.example_json, '$.messages[0].content') END, '');
    INSERT INTO dataset_system_prompts (dataset_id, status, prompt, examples)
    VALUES (NEW.dataset_id, NEW.status,
        coalesce(CASE WHEN json_extract(NEW.example_json, '$.messages[0].role') = 'system'
            THEN json_extract(NEW.example_json, '$.messages[0].content') END, ''), 1)
    ON CONFLICT (dataset_id, status, prompt) DO UPDATE SET examples = examples + 1;
END;

CREATE TRIGGER datasets_drop_prompt_counts AFTER DELETE ON datasets
BEGIN
    DELETE FROM dataset_system_prompts WHERE dataset_id = OLD.id;
END;
"""

# Fine-tunes from Discord: who may start them and where they are announced, the channel a
# job was started from (its posts go there when no training channel is set), its validation
# file, at most one unfinished job per dataset (two admins confirming at once start one),
# and every post the job follower made (a status or event is posted once: the post is
# recorded in the same transaction as the job's cursor and status move on).
_FINE_TUNES_FROM_DISCORD = """
ALTER TABLE guild_settings ADD COLUMN trainer_role_id INTEGER;
ALTER TABLE guild_settings ADD COLUMN training_channel_id INTEGER;

ALTER TABLE fine_tune_jobs ADD COLUMN channel_id INTEGER;
ALTER TABLE fine_tune_jobs ADD COLUMN validation_file_id TEXT;
CREATE UNIQUE INDEX fine_tune_jobs_one_unfinished ON fine_tune_jobs (dataset_id)
    WHERE dataset_id IS NOT NULL
    AND status IN ('pending', 'validating_files', 'queued', 'running');

CREATE TABLE job_posts (
    job_id INTEGER NOT NULL REFERENCES fine_tune_jobs (id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('status', 'event')),
    key TEXT NOT NULL,
    message_id INTEGER,
    posted_at TEXT NOT NULL,
    PRIMARY KEY (job_id, kind, key)
) WITHOUT ROWID;
"""

# The models a guild chatted with before its current one, newest last: /model rollback goes
# back one step, across restarts, whichever way the model was activated.
_ACTIVE_MODEL_HISTORY = """
CREATE TABLE active_model_history (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    system_prompt TEXT,
    job_id INTEGER REFERENCES fine_tune_jobs (id) ON DELETE SET NULL,
    activated_at TEXT NOT NULL,
    replaced_at TEXT NOT NULL
);
CREATE INDEX active_model_history_guild ON active_model_history (guild_id, id);
"""

# Which examples each fine-tune held out in its validation file (written before the files
# are uploaded), so /model compare asks the model prompts it never trained on. Only ids:
# an example deleted (a member's opt-out, a dropped dataset) leaves no trace here.
_JOB_VALIDATION_EXAMPLES = """
CREATE TABLE job_validation_examples (
    job_id INTEGER NOT NULL REFERENCES fine_tune_jobs (id) ON DELETE CASCADE,
    example_id INTEGER NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, example_id)
) WITHOUT ROWID;
CREATE INDEX job_validation_examples_example ON job_validation_examples (example_id);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core: guild settings, datasets, examples, votes, consents", _CORE),
    Migration(2, "token counts per encoding and per-dataset statistics", _TOKENS_AND_STATS),
    Migration(3, "fine-tune jobs, active models, spend ledger", _JOBS_AND_MODELS),
    Migration(4, "chat channels", _CHAT_CHANNELS),
    Migration(5, "guild settings: review channel, vote threshold, pending cap", _GUILD_REVIEW_SETTINGS),
    Migration(6, "command tree sync hashes", _COMMAND_SYNCS),
    Migration(
        7, "turn authors, review posts, default dataset, capture depth", _AUTHORS_REVIEWS_DEFAULTS
    ),
    Migration(8, "examples per system prompt", _SYSTEM_PROMPT_COUNTS),
    Migration(9, "fine-tunes from Discord: roles, channels, one start, job posts",
              _FINE_TUNES_FROM_DISCORD),
    Migration(10, "active model history", _ACTIVE_MODEL_HISTORY),
    Migration(11, "the validation examples of each fine-tune", _JOB_VALIDATION_EXAMPLES),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def _check_order(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must be 1, 2, 3, ... in order, not {versions}")


async def _recorded(conn: aiosqlite.Connection) -> dict[int, tuple[str, str]]:
    rows = await conn.execute_fetchall("SELECT version, name, checksum FROM schema_migrations")
    return {int(r[0]): (str(r[1]), str(r[2])) for r in rows}


def _verify(recorded: dict[int, tuple[str, str]], migrations: tuple[Migration, ...]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version} ({name!r}), which this code does not "
                "know: it was written by a newer tunecord"
            )
        if checksum != migration.checksum:
            raise MigrationError(
                f"migration {version} ({migration.name!r}) was changed after it was applied; "
                "migrations are append-only: add a new one instead"
            )


async def apply(
    conn: aiosqlite.Connection,
    now: Callable[[], str],
    *,
    target: int | None = None,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> list[int]:
    """Apply every pending migration up to ``target`` (default: all) on ``conn``.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no transaction open.
    Returns the versions applied, in order.
    """
    _check_order(migrations)
    await conn.execute(_CREATE_LEDGER)
    _verify(await _recorded(conn), migrations)
    applied: list[int] = []
    for migration in migrations:
        if target is not None and migration.version > target:
            break
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have just applied it.
            if migration.version in await _recorded(conn):
                await conn.execute("ROLLBACK")
                continue
            for statement in migration.statements():
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES (?, ?, ?, ?)",
                (migration.version, migration.name, migration.checksum, now()),
            )
            await conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise MigrationError(
                    f"migration {migration.version} ({migration.name!r}) failed: {exc}"
                ) from exc
            raise
        applied.append(migration.version)
    return applied
