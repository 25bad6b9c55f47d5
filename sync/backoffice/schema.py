"""The back office schema, as named migrations in the SQL subset SQLite and PostgreSQL share.

``{serial}`` becomes the dialect's auto-numbered key. ``events.pos`` is the order in which
events were accepted (a counter in ``settings``, advanced under the feed lock); events
with status ``accepted`` wait for the projector (``project``), which decides them.
``verify_queue`` holds applied
purchases waiting for the background re-score (``verify``), each with the member's state
(canonical JSON) as it was just before the purchase. Every table keyed by the till's
``event_id`` is keyed by it forever: the ledger never forgets an event it applied.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sync.backoffice.db import Database

SERIAL = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "BIGSERIAL PRIMARY KEY"}
POSTGRESQL_ONLY = "-- postgresql only, one statement\n"

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE stores (store_id TEXT PRIMARY KEY, name TEXT NOT NULL,
            created_at TEXT NOT NULL);
        CREATE TABLE enroll_codes (
            code_hash TEXT PRIMARY KEY, store_id TEXT NOT NULL REFERENCES stores(store_id),
            created_at TEXT NOT NULL, expires_at TEXT NOT NULL, used_by TEXT, used_at TEXT);
        CREATE TABLE terminals (
            terminal_id TEXT PRIMARY KEY, store_id TEXT NOT NULL REFERENCES stores(store_id),
            name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, enrolled_at TEXT NOT NULL,
            last_seen TEXT, revoked INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE epochs (
            terminal_id TEXT NOT NULL, epoch TEXT NOT NULL,
            min_seq BIGINT NOT NULL, max_seq BIGINT NOT NULL, events BIGINT NOT NULL,
            last_created_at TEXT, first_seen TEXT NOT NULL,
            PRIMARY KEY (terminal_id, epoch));
        CREATE TABLE events (
            event_id TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, epoch TEXT NOT NULL,
            seq BIGINT NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL,
            payload_hash TEXT NOT NULL, payload TEXT NOT NULL, created_at TEXT NOT NULL,
            received_at TEXT NOT NULL, status TEXT NOT NULL, code TEXT, member_id TEXT);
        CREATE INDEX events_terminal_seq ON events(terminal_id, epoch, seq);
        CREATE TABLE conflicts (
            id {serial}, event_id TEXT NOT NULL, terminal_id TEXT NOT NULL,
            payload_hash TEXT NOT NULL, received_at TEXT NOT NULL);
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE, phone_hash TEXT,
            phone_masked TEXT, phone_sealed TEXT, first_name TEXT, birthday TEXT,
            state TEXT NOT NULL, balance BIGINT NOT NULL, available BIGINT NOT NULL,
            pending BIGINT NOT NULL, expiring_points BIGINT NOT NULL, expiring_on TEXT,
            tier TEXT NOT NULL, debt BIGINT NOT NULL DEFAULT 0,
            consent_programme INTEGER NOT NULL, consent_marketing INTEGER NOT NULL,
            consent_text_version TEXT, registered_at TEXT NOT NULL, store_id TEXT,
            terminal_id TEXT, cashier_id TEXT, merged_into TEXT, updated_at TEXT NOT NULL);
        CREATE INDEX members_phone ON members(phone_hash);
        CREATE INDEX members_registered ON members(registered_at);
        CREATE TABLE purchases (
            event_id TEXT PRIMARY KEY, receipt_id TEXT NOT NULL, terminal_id TEXT NOT NULL,
            store_id TEXT NOT NULL, member_id TEXT NOT NULL, occurred_at TEXT NOT NULL,
            day TEXT NOT NULL, cashier_id TEXT, identified_by TEXT, offline INTEGER NOT NULL,
            amount_kop BIGINT NOT NULL, paid_kop BIGINT NOT NULL, earned BIGINT NOT NULL,
            bonus BIGINT NOT NULL, spent BIGINT NOT NULL, effects TEXT NOT NULL,
            refunded TEXT NOT NULL DEFAULT '{}',
            UNIQUE (terminal_id, receipt_id));
        CREATE INDEX purchases_day ON purchases(day);
        CREATE INDEX purchases_member ON purchases(member_id);
        CREATE TABLE refunds (
            event_id TEXT PRIMARY KEY, refund_id TEXT NOT NULL, purchase_event_id TEXT NOT NULL,
            terminal_id TEXT NOT NULL, store_id TEXT NOT NULL, member_id TEXT NOT NULL,
            occurred_at TEXT NOT NULL, day TEXT NOT NULL, cashier_id TEXT,
            amount_kop BIGINT NOT NULL, earn_reversed BIGINT NOT NULL,
            bonus_reversed BIGINT NOT NULL, returned BIGINT NOT NULL);
        CREATE TABLE flags (
            id {serial}, kind TEXT NOT NULL, event_id TEXT, member_id TEXT,
            terminal_id TEXT, detail TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE INDEX flags_kind ON flags(kind);
        CREATE TABLE changes (
            seq {serial}, kind TEXT NOT NULL, member_id TEXT, body TEXT NOT NULL,
            created_at TEXT NOT NULL);
        CREATE TABLE rules (
            version INTEGER PRIMARY KEY, document TEXT NOT NULL, published_at TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 0);
        """,
    ),
    (
        "0002_verify_queue",
        """
        CREATE TABLE verify_queue (
            id {serial}, event_id TEXT NOT NULL, member_id TEXT NOT NULL,
            state TEXT NOT NULL, queued_at TEXT NOT NULL);
        """,
    ),
    (
        # Pushes accept events (status 'accepted'); the projector applies them in ``pos``
        # order. Existing events get positions in the order they were received.
        "0003_accepted_events",
        """
        ALTER TABLE events ADD COLUMN pos BIGINT;
        ALTER TABLE events ADD COLUMN message TEXT;
        UPDATE events SET pos = r.n FROM (
            SELECT event_id, row_number() OVER (ORDER BY received_at, terminal_id, epoch, seq)
                AS n FROM events) AS r
            WHERE events.event_id = r.event_id;
        INSERT INTO settings(key, value)
            SELECT 'events_pos', CAST(COALESCE(max(pos), 0) AS TEXT) FROM events;
        CREATE INDEX events_terminal_pos ON events(terminal_id, pos);
        CREATE INDEX events_accepted ON events(pos) WHERE status = 'accepted';
        """,
    ),
    (
        # PostgreSQL only (a no-op on SQLite): payloads are a few KB, so PostgreSQL
        # compresses them out of line; lz4 does that at a third of the default pglz's CPU,
        # which was a third of accepting an event. Servers built without lz4 keep pglz.
        "0004_events_payload_lz4",
        POSTGRESQL_ONLY
        + """
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
                       AND 'lz4' = ANY(enumvals)) THEN
                ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
            END IF;
        END $$
        """,
    ),
    (
        # What each till runs (its User-Agent, e.g. kassa-agent/0.1.0), for the console.
        "0005_terminal_software",
        """
        ALTER TABLE terminals ADD COLUMN software TEXT;
        """,
    ),
    (
        # PostgreSQL only: the projector rewrites a member's row (state, balance, tier...)
        # at each batch that touches it, no indexed column among them. Pages kept 30 %
        # free let PostgreSQL put the new version beside the old one (a HOT update, no
        # new entry in any of the members' indexes); full pages made every update insert
        # into all four indexes, ~0.1 ms a member. Pages written from now on.
        "0006_members_fillfactor",
        POSTGRESQL_ONLY
        + """
        ALTER TABLE members SET (fillfactor = 70)
        """,
    ),
    (
        # The console's people (roles, Argon2id hashes, lockout), their sessions (token
        # SHA-256, absolute expiry) and the hash-chained audit log with its head hash
        # (sync.backoffice.people.users, .audit).
        "0007_console_users",
        """
        CREATE TABLE console_users (
            login TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, store_id TEXT,
            password_hash TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1,
            failures INTEGER NOT NULL DEFAULT 0, first_failure_at TEXT, locked_until TEXT,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE console_sessions (
            token_hash TEXT PRIMARY KEY, login TEXT NOT NULL, created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL);
        CREATE INDEX console_sessions_login ON console_sessions(login);
        CREATE TABLE console_audit (
            n BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
            subject TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        INSERT INTO settings(key, value) VALUES ('console_audit_head',
            '0000000000000000000000000000000000000000000000000000000000000000');
        """,
    ),
    (
        # What each till's send queue holds as it last told (the X-Kassa-Queue header:
        # events waiting, the oldest one's created_at, quarantined) and when it told it,
        # for the console's stores-and-tills page (sync.backoffice.tills).
        "0008_terminal_queue",
        """
        ALTER TABLE terminals ADD COLUMN queue_waiting BIGINT;
        ALTER TABLE terminals ADD COLUMN queue_oldest TEXT;
        ALTER TABLE terminals ADD COLUMN queue_quarantined BIGINT;
        ALTER TABLE terminals ADD COLUMN queue_at TEXT;
        """,
    ),
    (
        # The dashboard's daily roll-ups (sync.backoffice.rollups), kept by the projector
        # in the ledger's transaction: the additive KPI figures per local day, store and
        # cashier ('-' when none); the fully returned cheques with the refund that
        # completed each return; the owner's monthly plans (store_id '' = the chain).
        # Existing ledgers are back-filled at start (Backoffice.initialise).
        "0009_dashboard_rollups",
        """
        CREATE TABLE rollup_days (
            day TEXT NOT NULL, store_id TEXT NOT NULL, cashier_id TEXT NOT NULL,
            new_members BIGINT NOT NULL DEFAULT 0, welcome_points BIGINT NOT NULL DEFAULT 0,
            cheques BIGINT NOT NULL DEFAULT 0, refunded_cheques BIGINT NOT NULL DEFAULT 0,
            revenue_kop BIGINT NOT NULL DEFAULT 0, points_issued BIGINT NOT NULL DEFAULT 0,
            points_spent BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (day, store_id, cashier_id));
        CREATE TABLE rollup_returns (
            purchase_event_id TEXT PRIMARY KEY, refund_event_id TEXT NOT NULL,
            day TEXT NOT NULL, store_id TEXT NOT NULL, cashier_id TEXT NOT NULL);
        CREATE INDEX purchases_store_day ON purchases(store_id, day);
        CREATE TABLE dashboard_plans (
            month TEXT NOT NULL, figure TEXT NOT NULL, store_id TEXT NOT NULL,
            target BIGINT NOT NULL, set_by TEXT NOT NULL, set_at TEXT NOT NULL,
            PRIMARY KEY (month, figure, store_id));
        """,
    ),
    (
        # The console's members section (sync.backoffice.member_admin): a member blocked
        # or erased (152-FZ), manual point adjustments with their reason, the destruction
        # acts, and the indexes its search and profile read by (a name prefix walked on
        # ``first_name``, a member's refunds, flags, merged members, registration events).
        "0010_member_admin",
        """
        ALTER TABLE members ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE members ADD COLUMN erased_at TEXT;
        CREATE INDEX members_first_name ON members(first_name);
        CREATE INDEX members_merged_into ON members(merged_into);
        CREATE INDEX refunds_member ON refunds(member_id);
        CREATE INDEX flags_member ON flags(member_id);
        CREATE INDEX events_registration_member ON events(member_id)
            WHERE type = 'member_registered';
        CREATE TABLE member_adjustments (
            id {serial}, member_id TEXT NOT NULL, points BIGINT NOT NULL,
            reason TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL,
            lot_id TEXT NOT NULL, balance_after BIGINT NOT NULL);
        CREATE INDEX member_adjustments_member ON member_adjustments(member_id);
        CREATE TABLE member_erasures (
            member_id TEXT PRIMARY KEY, act_no BIGINT NOT NULL UNIQUE, erased_at TEXT NOT NULL,
            actor TEXT NOT NULL, reason TEXT NOT NULL, act TEXT NOT NULL);
        """,
    ),
    (
        # PostgreSQL only: the members' name search is a case-insensitive prefix
        # (``lower(first_name) LIKE 'ив%'``), which this index serves whatever the
        # database's collation (SQLite walks ``members_first_name`` instead).
        "0011_members_name_lower",
        POSTGRESQL_ONLY
        + """
        CREATE INDEX members_name_lower ON members (lower(first_name) text_pattern_ops)
        """,
    ),
    (
        # The register of coupons issued in the console (sync.backoffice.coupons): each
        # signed KC1 token with its terms and batch, who issued and who revoked it; and
        # which cheque used which coupon (written by the projector with the purchase).
        "0012_coupons",
        """
        CREATE TABLE coupon_batches (
            batch_id TEXT PRIMARY KEY, mode TEXT NOT NULL, note TEXT NOT NULL,
            kind TEXT NOT NULL, value BIGINT NOT NULL, valid_from TEXT NOT NULL,
            valid_until TEXT NOT NULL, min_cheque_kop BIGINT NOT NULL, count BIGINT NOT NULL,
            issued_at TEXT NOT NULL, issued_by TEXT NOT NULL);
        CREATE TABLE coupons (
            coupon_id TEXT PRIMARY KEY, batch_id TEXT NOT NULL, n BIGINT NOT NULL,
            token TEXT NOT NULL, member_code TEXT, revoked_at TEXT, revoked_by TEXT,
            revoke_reason TEXT);
        CREATE INDEX coupons_batch ON coupons(batch_id, n);
        CREATE TABLE coupon_redemptions (
            event_id TEXT PRIMARY KEY, coupon_id TEXT NOT NULL, receipt_id TEXT NOT NULL,
            terminal_id TEXT NOT NULL, store_id TEXT NOT NULL, member_id TEXT NOT NULL,
            occurred_at TEXT NOT NULL, discount_kop BIGINT NOT NULL, points BIGINT NOT NULL);
        CREATE INDEX coupon_redemptions_coupon ON coupon_redemptions(coupon_id);
        """,
    ),
    (
        # Programme versions with an effective time (sync.backoffice.programme): the
        # version tills run at time t is the one of the latest activation effective by t;
        # ``announced`` says its 'rules' change is in the feed. The active version's
        # activation is its publication.
        "0013_rules_schedule",
        """
        CREATE TABLE rules_activations (
            id {serial}, version INTEGER NOT NULL, effective_at TEXT NOT NULL,
            published_at TEXT NOT NULL, published_by TEXT NOT NULL,
            announced INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX rules_activations_due ON rules_activations(announced, effective_at);
        INSERT INTO rules_activations(version, effective_at, published_at, published_by,
            announced)
            SELECT version, published_at, published_at, 'migration', 1 FROM rules
            WHERE active = 1;
        """,
    ),
    (
        # Idempotent enrollment (sync.backoffice.enrollment): the claiming request's id
        # and the till's X25519 public key, the token sealed to that key until the till
        # confirms (then NULL), and when it confirmed. Codes used before this are
        # confirmed already.
        "0014_enroll_requests",
        """
        ALTER TABLE enroll_codes ADD COLUMN request_id TEXT;
        ALTER TABLE enroll_codes ADD COLUMN public_key TEXT;
        ALTER TABLE enroll_codes ADD COLUMN sealed_token TEXT;
        ALTER TABLE enroll_codes ADD COLUMN confirmed_at TEXT;
        UPDATE enroll_codes SET confirmed_at = used_at WHERE used_by IS NOT NULL;
        CREATE INDEX enroll_codes_used_by ON enroll_codes(used_by);
        """,
    ),
    (
        # The members whose card was merged into another are few: index only them, so a
        # query for the live members (``merged_into IS NULL``) is never planned on this
        # index (it replaces 0010's full one, which SQLite picked for a name search and then
        # walked every member).
        "0015_members_merged_partial",
        """
        DROP INDEX members_merged_into;
        CREATE INDEX members_merged_into ON members(merged_into) WHERE merged_into IS NOT NULL;
        """,
    ),
    (
        # The members' pages' one-time SMS codes (member_otp.py): only each code's HMAC,
        # its expiry and tries; the sender's address for the per-address limit.
        "0016_member_otp",
        """
        CREATE TABLE member_otp (
            id {serial}, phone_hash TEXT NOT NULL, client TEXT NOT NULL,
            code_hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
            attempts INTEGER NOT NULL, used INTEGER NOT NULL);
        CREATE INDEX member_otp_phone ON member_otp(phone_hash, created_at);
        CREATE INDEX member_otp_client ON member_otp(client, created_at);
        """,
    ),
    (
        # The members' own pages (member_signup.py): their sessions (only the token's
        # SHA-256, with the phone's hash, mask and sealed form), where each member who
        # joined there came from (store, poster), each consent given or withdrawn as its
        # own row (kind, text version, time: 152-FZ), and the requests to erase.
        "0017_member_signup",
        """
        CREATE TABLE member_sessions (
            token_hash TEXT PRIMARY KEY, phone_hash TEXT NOT NULL, phone_masked TEXT NOT NULL,
            phone_sealed TEXT NOT NULL, member_id TEXT, store_id TEXT, poster_id TEXT,
            created_at TEXT NOT NULL, expires_at TEXT NOT NULL);
        CREATE TABLE member_sources (
            member_id TEXT PRIMARY KEY, store_id TEXT, poster_id TEXT, at TEXT NOT NULL);
        CREATE INDEX member_sources_store ON member_sources(store_id, poster_id);
        CREATE TABLE member_consents (
            id {serial}, member_id TEXT NOT NULL, kind TEXT NOT NULL, granted INTEGER NOT NULL,
            text_version TEXT NOT NULL, at TEXT NOT NULL, channel TEXT NOT NULL);
        CREATE INDEX member_consents_member ON member_consents(member_id, id);
        CREATE TABLE member_erase_requests (
            member_id TEXT PRIMARY KEY, requested_at TEXT NOT NULL, channel TEXT NOT NULL);
        """,
    ),
    (
        # The member events (outbox.py): written in the transaction of the ledger change
        # that causes them; ``id`` is the global order (the pull feed's cursor), each
        # member's ``member_seq`` runs 1, 2, 3... without gaps (``outbox_seq`` holds each
        # member's last, so a batch takes its numbers in one statement); ``outbox_once``
        # makes a scheduled event (triggers.py) once per member, kind and day.
        "0018_outbox",
        """
        CREATE TABLE outbox (
            id {serial}, member_id TEXT NOT NULL, member_seq INTEGER NOT NULL,
            type TEXT NOT NULL, occurred_at TEXT NOT NULL, data TEXT NOT NULL,
            created_at TEXT NOT NULL, UNIQUE (member_id, member_seq));
        CREATE TABLE outbox_seq (member_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
        CREATE TABLE outbox_once (
            member_id TEXT NOT NULL, kind TEXT NOT NULL, day TEXT NOT NULL,
            created_at TEXT NOT NULL, PRIMARY KEY (member_id, kind, day));
        """,
    ),
    (
        # Audiences (audiences.py): saved segments (the rule set as JSON, the control
        # group's percent and salt, the last evaluation's counts), each segment's members
        # as last evaluated (``control``: in its control group), the nightly RFM / ABC
        # scores per member, and the scheduled exports of segments.
        "0020_segments",
        """
        CREATE TABLE segments (
            segment_id TEXT PRIMARY KEY, name TEXT NOT NULL, rules TEXT NOT NULL,
            control_pct INTEGER NOT NULL, salt TEXT NOT NULL, created_at TEXT NOT NULL,
            created_by TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
            evaluated_at TEXT, members BIGINT NOT NULL DEFAULT 0,
            control_members BIGINT NOT NULL DEFAULT 0);
        CREATE TABLE segment_members (
            segment_id TEXT NOT NULL, member_id TEXT NOT NULL, control INTEGER NOT NULL,
            since TEXT NOT NULL, PRIMARY KEY (segment_id, member_id));
        CREATE TABLE member_scores (
            member_id TEXT PRIMARY KEY, last_day TEXT NOT NULL, frequency BIGINT NOT NULL,
            monetary_kop BIGINT NOT NULL, r INTEGER NOT NULL, f INTEGER NOT NULL,
            m INTEGER NOT NULL, abc TEXT NOT NULL, scored_on TEXT NOT NULL);
        CREATE TABLE segment_exports (
            export_id TEXT PRIMARY KEY, segment_id TEXT NOT NULL, format TEXT NOT NULL,
            delimiter TEXT NOT NULL, every_hours INTEGER NOT NULL, next_at TEXT NOT NULL,
            last_at TEXT, last_file TEXT, created_by TEXT NOT NULL);
        """,
    ),
    (
        # The dashboard's cohort, buyer and points-held roll-ups (sync.backoffice.rollups),
        # kept by the projector in the ledger's transaction: per member the cheques not
        # returned in full and the registration cohort it counts in; per cohort month and
        # store the registered / first / second purchase counts; per month and member the
        # month's cheques not returned in full within it (distinct buyers); points in lots
        # by UTC expiry day and store, and by exact expiry (the split within today); per
        # store the live members and their debt. Existing ledgers are back-filled at start
        # (rollups.ensure).
        "0021_dashboard_cohorts",
        """
        CREATE TABLE rollup_members (
            member_id TEXT PRIMARY KEY, month TEXT NOT NULL, store_id TEXT NOT NULL,
            cohort INTEGER NOT NULL, cheques BIGINT NOT NULL);
        CREATE TABLE rollup_cohorts (
            month TEXT NOT NULL, store_id TEXT NOT NULL, registered BIGINT NOT NULL,
            first BIGINT NOT NULL, second BIGINT NOT NULL, PRIMARY KEY (month, store_id));
        CREATE TABLE rollup_buyers (
            month TEXT NOT NULL, member_id TEXT NOT NULL, cheques BIGINT NOT NULL,
            PRIMARY KEY (month, member_id));
        CREATE TABLE rollup_held (
            day TEXT NOT NULL, store_id TEXT NOT NULL, points BIGINT NOT NULL,
            PRIMARY KEY (day, store_id));
        CREATE TABLE rollup_expiry (
            expires_at TEXT NOT NULL, store_id TEXT NOT NULL, points BIGINT NOT NULL,
            PRIMARY KEY (expires_at, store_id));
        CREATE TABLE rollup_stores (
            store_id TEXT PRIMARY KEY, members BIGINT NOT NULL, debt BIGINT NOT NULL);
        """,
    ),
    (
        # Webhook delivery of the outbox (webhooks.py): the subscriptions (their secrets,
        # the previous one during a rotation, the cursor ``taken_to`` over outbox ids), one
        # delivery per subscription and event (``head``: the member's earliest pending, the
        # only one of the member that may be sent), and the delivery log of every attempt.
        "0019_webhooks",
        """
        CREATE TABLE webhook_subscriptions (
            id {serial}, url TEXT NOT NULL, types TEXT NOT NULL, secret TEXT NOT NULL,
            previous_secret TEXT, previous_until TEXT, state TEXT NOT NULL,
            disabled_reason TEXT, created_at TEXT NOT NULL, taken_to BIGINT NOT NULL);
        CREATE TABLE webhook_deliveries (
            subscription_id BIGINT NOT NULL, outbox_id BIGINT NOT NULL,
            member_id TEXT NOT NULL, state TEXT NOT NULL, head INTEGER NOT NULL,
            next_at TEXT NOT NULL, attempts INTEGER NOT NULL, first_at TEXT, claim TEXT,
            last_status INTEGER, last_error TEXT, created_at TEXT NOT NULL, done_at TEXT,
            PRIMARY KEY (subscription_id, outbox_id));
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at)
            WHERE state = 'pending' AND head = 1;
        CREATE INDEX webhook_deliveries_member
            ON webhook_deliveries(subscription_id, member_id, outbox_id) WHERE state = 'pending';
        CREATE INDEX webhook_deliveries_done ON webhook_deliveries(done_at) WHERE state = 'done';
        CREATE TABLE webhook_attempts (
            id {serial}, subscription_id BIGINT NOT NULL, outbox_id BIGINT NOT NULL,
            webhook_id TEXT NOT NULL, attempted_at TEXT NOT NULL, status INTEGER,
            duration_ms INTEGER NOT NULL, error TEXT);
        CREATE INDEX webhook_attempts_subscription ON webhook_attempts(subscription_id, id);
        CREATE INDEX webhook_attempts_at ON webhook_attempts(attempted_at);
        """,
    ),
    (
        # The console's delivery log numbers each attempt of an event (webhooks.log): the
        # attempts of one subscription and event read by index, not by a scan of its log.
        "0022_webhook_attempts_event",
        """
        CREATE INDEX webhook_attempts_event
            ON webhook_attempts(subscription_id, outbox_id, id);
        """,
    ),
    (
        # The dashboard's distinct buyers of any period (sync.backoffice.rollups, "reach"):
        # per member its cheques (day, store, completing return's day); per scope (the
        # chain '' or a store) and day the change, that day, in how many members' latest
        # and second latest cheque alive (not yet returned in full) is dated ``since``;
        # the cheques whose completing return is dated before them. Kept by the projector
        # in the ledger's transaction; existing ledgers are back-filled at start.
        "0023_dashboard_reach",
        """
        CREATE TABLE rollup_chain (member_id TEXT PRIMARY KEY, cheques TEXT NOT NULL);
        CREATE TABLE rollup_reach (
            store_id TEXT NOT NULL, day TEXT NOT NULL, since TEXT NOT NULL,
            first BIGINT NOT NULL, second BIGINT NOT NULL, PRIMARY KEY (store_id, day, since));
        CREATE TABLE rollup_early (
            purchase_event_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, day TEXT NOT NULL,
            store_id TEXT NOT NULL, return_day TEXT NOT NULL);
        """,
    ),
    (
        # The members' phone fingerprint v2 (agent.phonehash): the rows made before it keep
        # their v1 fingerprint, marked ``phone_legacy`` (lookups by phone try v2 then v1),
        # until the upgrade pass (Backoffice.upgrade_phone_fingerprints) turns it into v2
        # without the phone; masks lose their shown digits at once (what tills receive).
        "0024_phone_fingerprint_v2",
        """
        ALTER TABLE members ADD COLUMN phone_legacy INTEGER NOT NULL DEFAULT 0;
        UPDATE members SET phone_legacy = 1 WHERE phone_hash IS NOT NULL;
        UPDATE members SET phone_masked = substr(phone_masked, 1, length(phone_masked) - 5)
            || '**-**' WHERE substr(phone_masked, length(phone_masked) - 5, 1) = '-'
            AND substr(phone_masked, length(phone_masked) - 2, 1) = '-'
            AND substr(phone_masked, length(phone_masked) - 4, 5) <> '**-**';
        UPDATE members SET phone_masked = substr(phone_masked, 1, length(phone_masked) - 2)
            || '**' WHERE substr(phone_masked, length(phone_masked) - 2, 1) = '-'
            AND substr(phone_masked, length(phone_masked) - 5, 1) <> '-'
            AND substr(phone_masked, length(phone_masked) - 1, 2) <> '**';
        CREATE INDEX members_phone_legacy ON members(member_id) WHERE phone_legacy = 1;
        """,
    ),
    (
        # Members who joined on the members' pages are new members of the KPI report and
        # the dashboard (``rollups.web_join``): each join's local day and welcome bonus, so
        # a rebuild of the roll-ups counts it as the join did. Joins made before this are
        # counted now on their UTC date, their welcome bonus unknown (0).
        "0025_signup_rollups",
        """
        ALTER TABLE member_sources ADD COLUMN day TEXT NOT NULL DEFAULT '';
        ALTER TABLE member_sources ADD COLUMN welcome_points BIGINT NOT NULL DEFAULT 0;
        UPDATE member_sources SET day = substr(at, 1, 10);
        INSERT INTO rollup_days(day, store_id, cashier_id, new_members)
            SELECT s.day, COALESCE(s.store_id, ''), '-', count(*) FROM member_sources s
            JOIN members m ON m.member_id = s.member_id WHERE true
            GROUP BY s.day, COALESCE(s.store_id, '')
            ON CONFLICT(day, store_id, cashier_id) DO UPDATE
            SET new_members = rollup_days.new_members + excluded.new_members;
        """,
    ),
)


def migrate(db: Database) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction. Returns their names."""
    done: list[str] = []
    with db.transaction() as tx:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
    for name, script in MIGRATIONS:
        with db.transaction() as tx:
            if tx.one("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)):
                continue
            if script.startswith(POSTGRESQL_ONLY):
                if db.dialect == "postgresql":
                    tx.execute(script)
            else:
                for statement in script.replace("{serial}", SERIAL[db.dialect]).split(";"):
                    if statement.strip():
                        tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            done.append(name)
    return done
