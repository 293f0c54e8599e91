-- The event outbox's dedupe key (issue 16): a row is referred to as "<id>.<token>" (its
-- Redis dedupe key is pulse:outbox:<id>.<token>), since ids alone start again in a
-- restored or new database that shares the Redis. Rows written before this migration get a
-- token too.
ALTER TABLE event_outbox ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();
