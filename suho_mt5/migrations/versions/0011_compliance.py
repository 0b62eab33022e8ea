"""compliance: audit events written by the database, chain heads, checkpoints, GDPR, settings

* **Who may append** (``mt5_audit_log_admit``, SECURITY INVOKER, so it sees the inserting
  role): a tenant role appends only to the chain of the tenant it has set; no tenant or an
  empty one is refused (42501). The cross-tenant service roles (``mt5_ingest``,
  ``mt5_compliance``) and the schema's own functions (``mt5_owner``) may name any tenant
  when none is set. Event types ``audit.*`` and ``gdpr.*`` are reserved to the schema's own
  functions. The chain trigger now also sets ``actor`` (the inserting role, or the session's
  login for events the schema's triggers write) and ``app_user`` (a pseudonym of
  ``app.current_user_id``): whatever the writer sends there is overwritten.
* **Audit events from triggers** (``mt5_audit_capture``, SECURITY DEFINER, owned by
  ``mt5_owner``, fixed ``search_path``) on accounts (created, changed, deactivated,
  reactivated, API key rotated, deleted), trade orders (``trade.<status>``, modified),
  signal executions (``trade.executed``), signals (``signal.generated``), risk events
  (``risk.breach``, ``risk.acknowledged``), account settings (``config.changed``) and
  consents (granted, refused, withdrawn, changed, deleted). Payload: table, operation, the
  row before and after, personal fields replaced by keyed pseudonyms.
* **Chain heads** (``mt5_audit_chain_heads``): the last position and hash of every tenant's
  chain, kept by an AFTER INSERT trigger and only ever moved forward, so a truncated tail
  shows; new events continue after the recorded head.
* **Retention checkpoints**: ``mt5_audit_checkpoint()`` appends an ``audit.checkpoint``
  event per tenant naming the positions (and their hashes) retention may remove, so the
  chain still verifies after them. Written before every retention run: by the audit log's
  retention DELETE (postgresql), by ``mt5_drop_expired_chunks()`` (apache), by a daily
  TimescaleDB job ahead of the retention job (timescale).
* **Corrections**: ``mt5_audit_correct()`` appends an ``audit.correction`` event that refers
  to the original event (position, id, hash); nothing is ever edited.
* **GDPR**: ``mt5_gdpr_subject_keys`` holds one random key per (tenant, user); audit payloads
  carry ``psn_...`` pseudonyms made with it. ``mt5_gdpr_erase()`` pseudonymises the user's
  accounts and consents, records ``gdpr.erased`` and destroys the key.
* ``mt5_account_settings``: the EA settings the backend sends (CONFIG packets), audited.
* ``mt5_compliance_reports``: one live report per tenant, type and period
  (``mt5_compliance_reports_period_key``), so regenerating a report replaces it.

Downgrading drops ``app_user``: events that had one no longer verify under revision
0004's formula (take a digest and export the trail first).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.db import Edition
from suho_mt5.migrations.operations import (
    TENANT_SCHEMA,
    create_tenant_view_sql,
    execute_sql,
    health_check_sql,
    migration_edition,
    replace_tenant_view_sql,
    tenant_default,
)

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TSTZ = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
TENANT_ID_RULE = "tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'"

# Version 2 of the hashed form: version 1 (revision 0004) with app_user appended when it is
# set, so every event written before this revision keeps its hash.
ROW_HASH_V2_SQL = """CREATE FUNCTION mt5_audit_row_hash(
    tenant_id text, chain_seq bigint, prev_hash text, event_id uuid, event_time timestamptz,
    recorded_at timestamptz, event_type text, actor text, account_id uuid, payload jsonb,
    app_user text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT encode(sha256(convert_to((jsonb_build_array(
        tenant_id, chain_seq::text, prev_hash, event_id::text,
        (extract(epoch FROM event_time) * 1000000)::bigint::text,
        (extract(epoch FROM recorded_at) * 1000000)::bigint::text,
        event_type, actor, account_id::text, payload)
        || CASE WHEN app_user IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(app_user) END
        )::text, 'UTF8')), 'hex')
$fn$"""

PSEUDONYM_SQL = """CREATE FUNCTION mt5_gdpr_pseudonym(
    tenant text, subject text, field text DEFAULT NULL, value text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- A keyed pseudonym of a user (field NULL) or of one of the user's personal values. The key
-- is random and per (tenant, user): erasure deletes it, after which no pseudonym written
-- into the audit trail can be linked back to the person.
DECLARE
    subject_key bytea;
BEGIN
    IF tenant IS NULL OR subject IS NULL THEN
        RETURN NULL;
    END IF;
    IF subject LIKE 'erased\\_%' THEN
        RETURN subject;  -- already a pseudonym left by an erasure
    END IF;
    SELECT k.secret INTO subject_key FROM mt5_gdpr_subject_keys k
    WHERE k.tenant_id = tenant AND k.user_id = subject;
    IF NOT FOUND THEN
        -- gen_random_uuid() draws from pg_strong_random(): 244 random bits in two.
        INSERT INTO mt5_gdpr_subject_keys (tenant_id, user_id, secret)
        VALUES (tenant, subject, uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
        ON CONFLICT DO NOTHING;
        SELECT k.secret INTO subject_key FROM mt5_gdpr_subject_keys k
        WHERE k.tenant_id = tenant AND k.user_id = subject;
    END IF;
    RETURN 'psn_' || left(encode(sha256(subject_key || convert_to(
        coalesce(field || ':' || value, ''), 'UTF8')), 'hex'), 32);
END
$fn$"""

ADMIT_SQL = """CREATE FUNCTION mt5_audit_log_admit() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- SECURITY INVOKER on purpose: it must see the role that inserts, which the chain trigger
-- (running as the owner) cannot. A tenant role appends only to the chain of the tenant it
-- has set; without a tenant only the cross-tenant service roles and the schema's own
-- functions (the owner) may write, naming the tenant.
DECLARE
    current_tenant text := NULLIF(current_setting('app.current_tenant_id', true), '');
    own boolean := current_user = 'mt5_owner'
        OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
    service boolean := own
        OR pg_has_role(current_user, 'mt5_ingest', 'USAGE')
        OR pg_has_role(current_user, 'mt5_compliance', 'USAGE');
BEGIN
    IF current_tenant IS NULL AND NOT service THEN
        RAISE EXCEPTION 'an audit event needs a tenant: set app.current_tenant_id for the transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF current_tenant IS NOT NULL AND NEW.tenant_id IS DISTINCT FROM current_tenant THEN
        RAISE EXCEPTION 'an audit event of tenant % cannot be written while tenant % is set',
            NEW.tenant_id, current_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.event_type ~ '^(audit|gdpr)\\.' AND NOT own THEN
        RAISE EXCEPTION 'audit event type % is written only by the schema''s own functions',
            NEW.event_type USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Who: the inserting role; for events the schema's own triggers write (which run as the
    -- owner), the session's login.
    NEW.actor := CASE WHEN current_user = 'mt5_owner' THEN session_user ELSE current_user END;
    RETURN NEW;
END
$fn$"""

CHAIN_V2_SQL = """CREATE OR REPLACE FUNCTION mt5_audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Numbers and chains each tenant's events. Runs as the owner (the audit log has no row-level
-- security), so the previous event is found whoever inserts. Continues after the recorded
-- head when that is further than the log (a truncated tail stays a visible gap).
DECLARE
    current_tenant text := NULLIF(current_setting('app.current_tenant_id', true), '');
    user_setting text := NULLIF(current_setting('app.current_user_id', true), '');
    last_seq bigint;
    last_hash text;
    head_seq bigint;
    head_hash text;
BEGIN
    IF current_tenant IS NOT NULL AND NEW.tenant_id IS DISTINCT FROM current_tenant THEN
        RAISE EXCEPTION 'an audit event of tenant % cannot be written while tenant % is set',
            NEW.tenant_id, current_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.tenant_id IS NULL THEN
        RETURN NEW;  -- the NOT NULL constraint reports it
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- A snapshot older than the lock below could miss the tenant's latest event.
        RAISE EXCEPTION 'audit events must be written in READ COMMITTED transactions'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    -- One writer per tenant chain at a time; the next one waits, then sees this event.
    PERFORM pg_advisory_xact_lock(hashtextextended('mt5_audit_log:' || NEW.tenant_id, 0));
    SELECT a.chain_seq, a.row_hash INTO last_seq, last_hash
    FROM mt5_audit_log a
    WHERE a.tenant_id = NEW.tenant_id
    ORDER BY a.chain_seq DESC
    LIMIT 1;
    SELECT h.chain_seq, h.row_hash INTO head_seq, head_hash
    FROM mt5_audit_chain_heads h WHERE h.tenant_id = NEW.tenant_id;
    IF head_seq > coalesce(last_seq, 0) THEN
        last_seq := head_seq;
        last_hash := head_hash;
    END IF;
    NEW.chain_seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    NEW.recorded_at := clock_timestamp();
    NEW.app_user := mt5_gdpr_pseudonym(NEW.tenant_id, user_setting);
    NEW.row_hash := mt5_audit_row_hash(NEW.tenant_id, NEW.chain_seq, NEW.prev_hash,
        NEW.event_id, NEW.time, NEW.recorded_at, NEW.event_type, NEW.actor, NEW.account_id,
        NEW.payload, NEW.app_user);
    RETURN NEW;
END
$fn$"""

# Revision 0004's chain function, restored by the downgrade (the text must stay identical).
CHAIN_V1_SQL = """CREATE OR REPLACE FUNCTION mt5_audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Numbers and chains each tenant's events. Runs as the owner (the audit log has no row-level
-- security), so the previous event is found whoever inserts.
DECLARE
    current_tenant text := NULLIF(current_setting('app.current_tenant_id', true), '');
    previous record;
BEGIN
    IF current_tenant IS NOT NULL AND NEW.tenant_id IS DISTINCT FROM current_tenant THEN
        RAISE EXCEPTION 'an audit event of tenant % cannot be written while tenant % is set',
            NEW.tenant_id, current_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.tenant_id IS NULL THEN
        RETURN NEW;  -- the NOT NULL constraint reports it
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- A snapshot older than the lock below could miss the tenant's latest event.
        RAISE EXCEPTION 'audit events must be written in READ COMMITTED transactions'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    -- One writer per tenant chain at a time; the next one waits, then sees this event.
    PERFORM pg_advisory_xact_lock(hashtextextended('mt5_audit_log:' || NEW.tenant_id, 0));
    SELECT a.chain_seq, a.row_hash INTO previous
    FROM mt5_audit_log a
    WHERE a.tenant_id = NEW.tenant_id
    ORDER BY a.chain_seq DESC
    LIMIT 1;
    NEW.chain_seq := coalesce(previous.chain_seq, 0) + 1;
    NEW.prev_hash := coalesce(previous.row_hash, repeat('0', 64));
    NEW.recorded_at := clock_timestamp();
    NEW.row_hash := mt5_audit_row_hash(NEW.tenant_id, NEW.chain_seq, NEW.prev_hash,
        NEW.event_id, NEW.time, NEW.recorded_at, NEW.event_type, NEW.actor, NEW.account_id,
        NEW.payload);
    RETURN NEW;
END
$fn$"""

HEAD_SQL = """CREATE FUNCTION mt5_audit_log_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Deferred to the end of the transaction (still under the chain's advisory lock), and only
-- the transaction's last event of each chain moves the head: updating one row per event
-- would pile up row versions the next lookups must walk (quadratic in a bulk insert). Only
-- rows really inserted (not those ON CONFLICT skipped) fire it.
BEGIN
    IF EXISTS (SELECT 1 FROM mt5_audit_log a
               WHERE a.tenant_id = NEW.tenant_id AND a.chain_seq > NEW.chain_seq) THEN
        RETURN NULL;
    END IF;
    INSERT INTO mt5_audit_chain_heads AS h (tenant_id, chain_seq, row_hash, recorded_at)
    VALUES (NEW.tenant_id, NEW.chain_seq, NEW.row_hash, NEW.recorded_at)
    ON CONFLICT (tenant_id) DO UPDATE
        SET chain_seq = EXCLUDED.chain_seq, row_hash = EXCLUDED.row_hash,
            recorded_at = EXCLUDED.recorded_at
        WHERE h.chain_seq < EXCLUDED.chain_seq;
    RETURN NULL;
END
$fn$"""

HEADS_FORWARD_SQL = """CREATE FUNCTION mt5_audit_chain_heads_forward() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- A head only moves forward: no DELETE, no TRUNCATE, no UPDATE to an earlier position.
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.tenant_id = OLD.tenant_id AND NEW.chain_seq > OLD.chain_seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'mt5_audit_chain_heads only moves forward: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$"""

CAPTURE_SQL = """CREATE FUNCTION mt5_audit_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- One audit event per audited row change, written by the database so that no code path can
-- forget one. TG_ARGV[0] names the source table (on TimescaleDB the trigger fires on a chunk,
-- whose name says nothing). Personal fields become keyed pseudonyms (mt5_gdpr_pseudonym).
DECLARE
    source text := TG_ARGV[0];
    old_image jsonb;
    new_image jsonb;
    r jsonb;
    tenant text;
    kind text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_image := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_image := to_jsonb(NEW); END IF;
    r := coalesce(new_image, old_image);
    tenant := r ->> 'tenant_id';
    IF source = 'mt5_user_accounts' THEN
        IF TG_OP = 'UPDATE' AND old_image - 'updated_at' = new_image - 'updated_at' THEN
            RETURN NULL;
        END IF;
        kind := CASE
            WHEN TG_OP = 'INSERT' THEN 'account.created'
            WHEN TG_OP = 'DELETE' THEN 'account.deleted'
            WHEN (old_image ->> 'is_active')::boolean AND NOT (new_image ->> 'is_active')::boolean
                THEN 'account.deactivated'
            WHEN NOT (old_image ->> 'is_active')::boolean AND (new_image ->> 'is_active')::boolean
                THEN 'account.reactivated'
            WHEN old_image -> 'api_key_hash' IS DISTINCT FROM new_image -> 'api_key_hash'
                THEN 'account.api_key_rotated'
            ELSE 'account.changed' END;
        old_image := mt5_audit_account_image(old_image);
        new_image := mt5_audit_account_image(new_image);
    ELSIF source = 'mt5_user_consents' THEN
        kind := CASE
            WHEN TG_OP = 'INSERT' AND (new_image ->> 'granted')::boolean THEN 'consent.granted'
            WHEN TG_OP = 'INSERT' THEN 'consent.refused'
            WHEN TG_OP = 'DELETE' THEN 'consent.deleted'
            WHEN old_image ->> 'revoked_at' IS NULL AND new_image ->> 'revoked_at' IS NOT NULL
                THEN 'consent.withdrawn'
            ELSE 'consent.changed' END;
        old_image := jsonb_set(old_image, '{user_id}', to_jsonb(
            mt5_gdpr_pseudonym(tenant, old_image ->> 'user_id')), false);
        new_image := jsonb_set(new_image, '{user_id}', to_jsonb(
            mt5_gdpr_pseudonym(tenant, new_image ->> 'user_id')), false);
    ELSIF source = 'mt5_trade_orders' THEN
        kind := CASE
            WHEN TG_OP = 'INSERT' OR old_image ->> 'status' IS DISTINCT FROM new_image ->> 'status'
                THEN 'trade.' || (new_image ->> 'status')
            ELSE 'trade.modified' END;
    ELSIF source = 'mt5_signal_executions' THEN
        kind := 'trade.executed';
    ELSIF source = 'mt5_trading_signals' THEN
        kind := 'signal.generated';
    ELSIF source = 'mt5_risk_events' THEN
        kind := CASE
            WHEN TG_OP = 'INSERT' THEN 'risk.breach'
            WHEN old_image ->> 'acknowledged_at' IS NULL AND new_image ->> 'acknowledged_at' IS NOT NULL
                THEN 'risk.acknowledged'
            ELSE 'risk.changed' END;
    ELSIF source = 'mt5_account_settings' THEN
        kind := 'config.changed';
    ELSE
        RAISE EXCEPTION 'mt5_audit_capture() does not know table %', source;
    END IF;
    IF TG_OP = 'UPDATE' AND old_image = new_image THEN
        RETURN NULL;
    END IF;
    INSERT INTO mt5_audit_log (time, tenant_id, event_type, account_id, payload)
    VALUES (now(), tenant, kind, (r ->> 'account_id')::uuid,
            jsonb_build_object('table', source, 'op', lower(TG_OP),
                               'before', old_image, 'after', new_image));
    RETURN NULL;
END
$fn$"""

ACCOUNT_IMAGE_SQL = """CREATE FUNCTION mt5_audit_account_image(account jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- An account row as the audit trail keeps it: the user, the MT5 login and the account
-- number as keyed pseudonyms, the API key hash only as "set or not".
DECLARE
    tenant text := account ->> 'tenant_id';
    subject text := account ->> 'user_id';
BEGIN
    IF account IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (account - 'api_key_hash') || jsonb_build_object(
        'user_id', mt5_gdpr_pseudonym(tenant, subject),
        'mt5_login', mt5_gdpr_pseudonym(tenant, subject, 'mt5_login', account ->> 'mt5_login'),
        'mt5_account_number', mt5_gdpr_pseudonym(tenant, subject, 'mt5_account_number',
                                                 account ->> 'mt5_account_number'),
        'api_key_set', account ->> 'api_key_hash' IS NOT NULL,
        'api_key_fingerprint', left(encode(sha256(convert_to(
            account ->> 'api_key_hash', 'UTF8')), 'hex'), 16));
END
$fn$"""

CHECKPOINT_SQL = """CREATE FUNCTION mt5_audit_checkpoint() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- For every tenant, an audit.checkpoint event naming what retention may remove from its
-- chain, with the hashes a verifier needs to check the chain across the hole: the longest
-- prefix of events older than the cutoff (through_seq, through_hash), and the few later
-- events a writer dated that far back (extra: [[position, hash], ...]). The cutoff looks
-- 7 days ahead of the retention period, so that retention running on its own schedule
-- (TimescaleDB drops whole chunks) in that window removes only covered events.
DECLARE
    keep interval;
    cutoff timestamptz;
    head record;
    young bigint;
    through bigint;
    done bigint;
    through_hash text;
    through_time timestamptz;
    extra jsonb;
    written integer := 0;
BEGIN
    SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
    WHERE c.relation_schema = 'public' AND c.relation_name = 'mt5_audit_log';
    IF keep IS NULL THEN
        RETURN 0;
    END IF;
    cutoff := now() - keep + interval '7 days';
    FOR head IN SELECT h.tenant_id, h.chain_seq FROM mt5_audit_chain_heads h ORDER BY 1 LOOP
        SELECT min(a.chain_seq) INTO young FROM mt5_audit_log a
        WHERE a.tenant_id = head.tenant_id AND a.time >= cutoff;
        through := coalesce(young - 1, head.chain_seq);
        SELECT max((a.payload ->> 'through_seq')::bigint) INTO done FROM mt5_audit_log a
        WHERE a.tenant_id = head.tenant_id AND a.event_type = 'audit.checkpoint';
        through_hash := NULL;
        IF through > coalesce(done, 0) THEN
            SELECT a.row_hash, a.time INTO through_hash, through_time FROM mt5_audit_log a
            WHERE a.tenant_id = head.tenant_id AND a.chain_seq = through;
        END IF;
        IF through_hash IS NULL THEN
            through := greatest(through, coalesce(done, 0));
        END IF;
        SELECT jsonb_agg(jsonb_build_array(a.chain_seq, a.row_hash) ORDER BY a.chain_seq)
        INTO extra FROM mt5_audit_log a
        WHERE a.tenant_id = head.tenant_id AND a.time < cutoff AND a.chain_seq > through
          AND NOT EXISTS (
              SELECT 1 FROM mt5_audit_log c, jsonb_array_elements(c.payload -> 'extra') x
              WHERE c.tenant_id = head.tenant_id AND c.event_type = 'audit.checkpoint'
                AND (x ->> 0)::bigint = a.chain_seq);
        CONTINUE WHEN through_hash IS NULL AND extra IS NULL;
        INSERT INTO mt5_audit_log (time, tenant_id, event_type, payload)
        VALUES (now(), head.tenant_id, 'audit.checkpoint', jsonb_strip_nulls(jsonb_build_object(
            'through_seq', CASE WHEN through_hash IS NOT NULL THEN through END,
            'through_hash', through_hash, 'through_time', through_time,
            'extra', extra, 'cutoff', cutoff, 'retention', keep::text)));
        written := written + 1;
    END LOOP;
    RETURN written;
END
$fn$"""

APPEND_ONLY_V2_SQL = """CREATE OR REPLACE FUNCTION mt5_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Refuses UPDATE, DELETE and TRUNCATE for every role, owner and superusers included. The one
-- exception is retention: mt5_maintain() sets suho_mt5.audit_retention for its transaction
-- and may then delete rows older than the retention period recorded for the table; each
-- such DELETE first writes the retention checkpoints that keep the chain verifiable.
DECLARE
    keep interval;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('suho_mt5.audit_retention', true) = 'on' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            PERFORM mt5_audit_checkpoint();
            RETURN NULL;
        END IF;
        SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
        WHERE c.relation_schema = 'public' AND c.relation_name = 'mt5_audit_log';
        IF keep IS NOT NULL AND OLD.time < now() - keep THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'mt5_audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'only retention past the recorded period removes audit events';
END
$fn$"""

# Revision 0004's append-only function, restored by the downgrade (text kept identical).
APPEND_ONLY_V1_SQL = """CREATE OR REPLACE FUNCTION mt5_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Refuses UPDATE, DELETE and TRUNCATE for every role, owner and superusers included. The one
-- exception is retention: mt5_maintain() sets suho_mt5.audit_retention for its transaction
-- and may then delete rows older than the retention period recorded for the table.
DECLARE
    keep interval;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('suho_mt5.audit_retention', true) = 'on' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        END IF;
        SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
        WHERE c.relation_schema = 'public' AND c.relation_name = 'mt5_audit_log';
        IF keep IS NOT NULL AND OLD.time < now() - keep THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'mt5_audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'only retention past the recorded period removes audit events';
END
$fn$"""

# apache: retention drops chunks through this function; checkpoints come first.
DROP_EXPIRED_CHUNKS_V2_SQL = """CREATE OR REPLACE FUNCTION mt5_drop_expired_chunks(target_schema text, target_relation text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- drop_chunks() needs the hypertable's owner: this runs as mt5_owner, and only with the
-- retention period recorded for the table, so a caller cannot drop anything younger.
-- Before the audit log loses chunks, its retention checkpoints are written.
DECLARE
    keep interval;
    dropped bigint;
BEGIN
    SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
    WHERE c.relation_schema = target_schema AND c.relation_name = target_relation
      AND c.kind = 'hypertable';
    IF keep IS NULL THEN
        RAISE EXCEPTION '%.% has no retention period recorded', target_schema, target_relation
            USING ERRCODE = 'undefined_object';
    END IF;
    IF target_schema = 'public' AND target_relation = 'mt5_audit_log' THEN
        PERFORM mt5_audit_checkpoint();
    END IF;
    SELECT count(*) INTO dropped
    FROM drop_chunks(format('%I.%I', target_schema, target_relation)::regclass, older_than => now() - keep);
    RETURN dropped;
END
$fn$"""

# Revision 0006's version, restored by the downgrade (text kept identical).
DROP_EXPIRED_CHUNKS_V1_SQL = """CREATE OR REPLACE FUNCTION mt5_drop_expired_chunks(target_schema text, target_relation text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- drop_chunks() needs the hypertable's owner: this runs as mt5_owner, and only with the
-- retention period recorded for the table, so a caller cannot drop anything younger.
DECLARE
    keep interval;
    dropped bigint;
BEGIN
    SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
    WHERE c.relation_schema = target_schema AND c.relation_name = target_relation
      AND c.kind = 'hypertable';
    IF keep IS NULL THEN
        RAISE EXCEPTION '%.% has no retention period recorded', target_schema, target_relation
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT count(*) INTO dropped
    FROM drop_chunks(format('%I.%I', target_schema, target_relation)::regclass, older_than => now() - keep);
    RETURN dropped;
END
$fn$"""

# timescale: TimescaleDB's own retention job drops the audit log's chunks on its schedule;
# a checkpoint a day, looking 7 days ahead, keeps ahead of it.
CHECKPOINT_JOB_SQL = """CREATE PROCEDURE mt5_audit_checkpoint_job(job_id integer, config jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
BEGIN
    PERFORM mt5_audit_checkpoint();
END
$fn$"""

CORRECT_SQL = """CREATE FUNCTION mt5_audit_correct(
    tenant text, original_event_id uuid, reason text, correction jsonb DEFAULT '{}'::jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- A correction is a new event that names the original (position, id, hash); the original
-- stays as it was. Returns the correction's position.
DECLARE
    original record;
    seq bigint;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a correction needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.chain_seq, a.row_hash, a.account_id INTO original FROM mt5_audit_log a
    WHERE a.tenant_id = tenant AND a.event_id = original_event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit event % in the chain of tenant %', original_event_id, tenant
            USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO mt5_audit_log (time, tenant_id, event_type, account_id, payload)
    VALUES (now(), tenant, 'audit.correction', original.account_id, jsonb_build_object(
        'corrects', jsonb_build_object('event_id', original_event_id,
                                       'chain_seq', original.chain_seq,
                                       'row_hash', original.row_hash),
        'reason', reason, 'correction', coalesce(correction, '{}'::jsonb)))
    RETURNING chain_seq INTO seq;
    RETURN seq;
END
$fn$"""

ERASE_SQL = """CREATE FUNCTION mt5_gdpr_erase(tenant text, subject text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET app.current_tenant_id = ''
AS $fn$
-- GDPR erasure by pseudonymisation: the user's accounts and consents keep their ids, money
-- and history but lose every personal value; the audit trail keeps its pseudonyms, whose
-- key is destroyed last, so nothing in the trail can be linked back to the person while
-- every hash stays as it was.
DECLARE
    pseudonym text;
    accounts integer;
    consents integer;
BEGIN
    IF tenant IS NULL OR subject IS NULL OR subject LIKE 'erased\\_%' THEN
        RAISE EXCEPTION 'erasure needs a tenant and a user id' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Runs as the owner, which row-level security filters like everyone: act as the tenant.
    PERFORM set_config('app.current_tenant_id', tenant, true);
    IF NOT EXISTS (SELECT 1 FROM mt5_user_accounts a WHERE a.tenant_id = tenant AND a.user_id = subject)
       AND NOT EXISTS (SELECT 1 FROM mt5_user_consents c WHERE c.tenant_id = tenant AND c.user_id = subject)
       AND NOT EXISTS (SELECT 1 FROM mt5_gdpr_subject_keys k WHERE k.tenant_id = tenant AND k.user_id = subject)
    THEN
        RAISE EXCEPTION 'tenant % holds no data of user %', tenant, subject USING ERRCODE = 'no_data_found';
    END IF;
    pseudonym := 'erased_' || mt5_gdpr_pseudonym(tenant, subject);
    UPDATE mt5_user_accounts a
    SET user_id = pseudonym,
        -- Unique per broker server, > 0, and derived from nothing personal.
        mt5_login = ('x' || left(encode(sha256(convert_to(a.account_id::text, 'UTF8')), 'hex'), 15))::bit(60)::bigint + 1,
        mt5_account_number = '0',
        api_key_hash = NULL,
        is_active = false
    WHERE a.tenant_id = tenant AND a.user_id = subject;
    GET DIAGNOSTICS accounts = ROW_COUNT;
    UPDATE mt5_user_consents c SET user_id = pseudonym
    WHERE c.tenant_id = tenant AND c.user_id = subject;
    GET DIAGNOSTICS consents = ROW_COUNT;
    INSERT INTO mt5_audit_log (time, tenant_id, event_type, payload)
    VALUES (now(), tenant, 'gdpr.erased', jsonb_build_object(
        'subject', pseudonym, 'accounts', accounts, 'consents', consents));
    DELETE FROM mt5_gdpr_subject_keys k WHERE k.tenant_id = tenant AND k.user_id = subject;
    RETURN jsonb_build_object('subject', pseudonym, 'accounts', accounts, 'consents', consents);
END
$fn$"""

FUNCTIONS = (
    ("mt5_audit_row_hash(text, bigint, text, uuid, timestamptz, timestamptz, text, text, uuid,"
     " jsonb, text)", ROW_HASH_V2_SQL),
    ("mt5_gdpr_pseudonym(text, text, text, text)", PSEUDONYM_SQL),
    ("mt5_audit_log_admit()", ADMIT_SQL),
    ("mt5_audit_log_head()", HEAD_SQL),
    ("mt5_audit_chain_heads_forward()", HEADS_FORWARD_SQL),
    ("mt5_audit_account_image(jsonb)", ACCOUNT_IMAGE_SQL),
    ("mt5_audit_capture()", CAPTURE_SQL),
    ("mt5_audit_checkpoint()", CHECKPOINT_SQL),
    ("mt5_audit_correct(text, uuid, text, jsonb)", CORRECT_SQL),
    ("mt5_gdpr_erase(text, text)", ERASE_SQL),
)
# Who may call what (everything else: the owner only).
EXECUTE_GRANTS = (
    ("mt5_gdpr_pseudonym(text, text, text, text)", "mt5_compliance"),
    ("mt5_audit_checkpoint()", "mt5_maintenance, mt5_compliance"),
    ("mt5_audit_correct(text, uuid, text, jsonb)", "mt5_compliance"),
    ("mt5_gdpr_erase(text, text)", "mt5_compliance"),
)

# (table, the operations whose rows are audited)
AUDITED = (
    ("mt5_user_accounts", "INSERT OR UPDATE OR DELETE"),
    ("mt5_user_consents", "INSERT OR UPDATE OR DELETE"),
    ("mt5_trade_orders", "INSERT OR UPDATE"),
    ("mt5_signal_executions", "INSERT"),
    ("mt5_trading_signals", "INSERT"),
    ("mt5_risk_events", "INSERT OR UPDATE"),
    ("mt5_account_settings", "INSERT OR UPDATE OR DELETE"),
)


# As revision 0009 has them, and with this revision's tenant table.
HEALTH_TENANT_TABLES = (
    "mt5_user_accounts", "mt5_account_balance_history", "mt5_broker_quotes", "mt5_ea_heartbeat",
    "mt5_trade_orders", "mt5_trading_signals", "mt5_signal_executions", "mt5_risk_events",
    "mt5_user_consents", "mt5_compliance_reports",
)
SETTINGS = "mt5_account_settings"


def _health_check(tenant_tables: Sequence[str]) -> str:
    return health_check_sql(tenant_tables=tenant_tables,
                            all_tables=(*tenant_tables, "mt5_audit_log"), bcrypt_cost=12,
                            pbkdf2_iterations=25000, tenant_views=True, or_replace=True)


def _tenant_view(table: str, grants: Sequence[tuple[str, str]]) -> None:
    """The table's view in mt5_tenant, as revision 0009 makes them, with the tenant roles'
    privileges (they hold none on the table)."""
    view = f"{TENANT_SCHEMA}.{table}"
    execute_sql(create_tenant_view_sql(table))
    execute_sql(f"ALTER VIEW {view} OWNER TO mt5_owner")
    execute_sql(
        f"COMMENT ON VIEW {view} IS 'suho-mt5: public.{table}, rows of the tenant in "
        "app.current_tenant_id only (read and write)'"
    )
    for role, privileges in grants:
        execute_sql(f"GRANT {privileges} ON {view} TO {role}")


def upgrade() -> None:
    op.add_column("mt5_audit_log", sa.Column("app_user", sa.Text(), nullable=True))
    # The tenant view shows the new column too (a view's columns are fixed when it is made).
    execute_sql(replace_tenant_view_sql("mt5_audit_log"))

    op.create_table(
        "mt5_audit_chain_heads",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column("recorded_at", TSTZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="mt5_audit_chain_heads_pkey"),
    )
    op.create_table(
        "mt5_gdpr_subject_keys",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name="mt5_gdpr_subject_keys_pkey"),
        sa.CheckConstraint("octet_length(secret) >= 32", name="mt5_gdpr_subject_keys_secret_check"),
    )
    op.create_table(
        "mt5_account_settings",
        sa.Column("tenant_id", sa.Text(), nullable=False, server_default=sa.text(tenant_default())),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "name", name="mt5_account_settings_pkey"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["mt5_user_accounts.tenant_id", "mt5_user_accounts.account_id"],
            name="mt5_account_settings_account_fkey",
        ),
        sa.CheckConstraint(TENANT_ID_RULE, name="mt5_account_settings_tenant_id_check"),
        # The CONFIG packet's name field: 16 bytes of printable ASCII.
        sa.CheckConstraint("name ~ '^[!-~]{1,16}$'", name="mt5_account_settings_name_check"),
        sa.CheckConstraint("char_length(value) <= 256", name="mt5_account_settings_value_check"),
    )
    op.create_index(
        "mt5_compliance_reports_period_key", "mt5_compliance_reports",
        ["tenant_id", "report_type", "report_period_start", "report_period_end"],
        unique=True, postgresql_where=sa.text("status <> 'superseded'"),
    )
    for table in ("mt5_audit_chain_heads", "mt5_gdpr_subject_keys", "mt5_account_settings"):
        execute_sql(f"ALTER TABLE {table} OWNER TO mt5_owner")
    # The heads of chains written before this revision.
    execute_sql(
        "INSERT INTO mt5_audit_chain_heads (tenant_id, chain_seq, row_hash, recorded_at) "
        "SELECT DISTINCT ON (tenant_id) tenant_id, chain_seq, row_hash, recorded_at "
        "FROM mt5_audit_log ORDER BY tenant_id, chain_seq DESC"
    )

    for signature, body in FUNCTIONS:
        execute_sql(body)
        execute_sql(f"ALTER FUNCTION {signature} OWNER TO mt5_owner")
        execute_sql(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    for signature, roles in EXECUTE_GRANTS:
        execute_sql(f"GRANT EXECUTE ON FUNCTION {signature} TO {roles}")
    execute_sql(CHAIN_V2_SQL)
    execute_sql(APPEND_ONLY_V2_SQL)
    edition = migration_edition()
    if edition is Edition.APACHE:
        execute_sql(DROP_EXPIRED_CHUNKS_V2_SQL)
    if edition is Edition.TIMESCALE:
        execute_sql(CHECKPOINT_JOB_SQL)
        execute_sql("ALTER PROCEDURE mt5_audit_checkpoint_job(integer, jsonb) OWNER TO mt5_owner")
        execute_sql("REVOKE ALL ON PROCEDURE mt5_audit_checkpoint_job(integer, jsonb) FROM PUBLIC")
        # TimescaleDB makes the current user the job's owner.
        execute_sql("SET LOCAL ROLE mt5_owner")
        execute_sql("SELECT add_job('public.mt5_audit_checkpoint_job', INTERVAL '1 day')")
        execute_sql("RESET ROLE")

    # BEFORE INSERT triggers fire in name order: admit (who) before chain (where).
    execute_sql(
        "CREATE TRIGGER mt5_audit_log_admit BEFORE INSERT ON mt5_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION mt5_audit_log_admit()"
    )
    execute_sql(
        "CREATE CONSTRAINT TRIGGER mt5_audit_log_head AFTER INSERT ON mt5_audit_log "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mt5_audit_log_head()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_audit_chain_heads_forward BEFORE UPDATE OR DELETE ON "
        "mt5_audit_chain_heads FOR EACH ROW EXECUTE FUNCTION mt5_audit_chain_heads_forward()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_audit_chain_heads_no_truncate BEFORE TRUNCATE ON "
        "mt5_audit_chain_heads FOR EACH STATEMENT EXECUTE FUNCTION mt5_audit_chain_heads_forward()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_account_settings_touch BEFORE UPDATE ON mt5_account_settings "
        "FOR EACH ROW EXECUTE FUNCTION mt5_touch_updated_at()"
    )
    for table, events in AUDITED:
        execute_sql(
            f"CREATE TRIGGER {table}_audit AFTER {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION mt5_audit_capture('{table}')"
        )

    # Row-level security as on every tenant table; the tenant roles reach it through its view.
    op.enable_tenant_rls(SETTINGS, cross_tenant={"mt5_compliance": ["SELECT"]})
    execute_sql(f"GRANT SELECT ON {SETTINGS} TO mt5_compliance")
    _tenant_view(SETTINGS, (("mt5_app", "SELECT, INSERT, UPDATE, DELETE"),
                            ("mt5_readonly", "SELECT")))
    execute_sql("GRANT SELECT ON mt5_audit_chain_heads TO mt5_compliance, mt5_maintenance")
    execute_sql(_health_check((*HEALTH_TENANT_TABLES, SETTINGS)))


def downgrade() -> None:
    edition = migration_edition()
    execute_sql(_health_check(HEALTH_TENANT_TABLES))
    execute_sql(f"DROP VIEW {TENANT_SCHEMA}.{SETTINGS}")
    if edition is Edition.TIMESCALE:
        execute_sql(
            "SELECT delete_job(job_id) FROM timescaledb_information.jobs"
            " WHERE proc_schema = 'public' AND proc_name = 'mt5_audit_checkpoint_job'"
        )
        execute_sql("DROP PROCEDURE mt5_audit_checkpoint_job(integer, jsonb)")
    if edition is Edition.APACHE:
        execute_sql(DROP_EXPIRED_CHUNKS_V1_SQL)
    for table, _ in reversed(AUDITED):
        if table != "mt5_account_settings":
            execute_sql(f"DROP TRIGGER {table}_audit ON {table}")
    execute_sql("DROP TRIGGER mt5_audit_log_head ON mt5_audit_log")
    execute_sql("DROP TRIGGER mt5_audit_log_admit ON mt5_audit_log")
    execute_sql(APPEND_ONLY_V1_SQL)
    execute_sql(CHAIN_V1_SQL)
    op.drop_table("mt5_account_settings")
    op.drop_index("mt5_compliance_reports_period_key", table_name="mt5_compliance_reports")
    op.drop_table("mt5_gdpr_subject_keys")
    op.drop_table("mt5_audit_chain_heads")
    for signature, _ in reversed(FUNCTIONS):
        execute_sql(f"DROP FUNCTION {signature}")
    # The view depends on every column: made again without app_user, as revision 0009 had it.
    execute_sql(f"DROP VIEW {TENANT_SCHEMA}.mt5_audit_log")
    op.drop_column("mt5_audit_log", "app_user")
    _tenant_view("mt5_audit_log", (("mt5_app", "INSERT"),))
