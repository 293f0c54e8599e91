-- The event outbox's dedupe key (issue 16): a row is referred to as "<id>.<token>" (its
-- Redis dedupe key is pulse:outbox:<id>.<token>), since ids alone start again in a
-- restored or new database that shares the Redis. Rows written before this migration get a
-- token too. (IF NOT EXISTS: a development database may have had it from an early 006.)
ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS token uuid NOT NULL DEFAULT gen_random_uuid();
