-- The event outbox (issue 16): the statement that commits a change also inserts its live
-- event here, so that a committed change always has its event. The process publishes it
-- after replying (server/events.c) and deletes the row; a sweeper on every replica publishes
-- the rows a process left behind (it died after the commit). Redis dedupes by id
-- (pulse:outbox:<id>, then <id>.<token>: migration 007), so a row published twice reaches
-- nobody twice.
CREATE TABLE event_outbox (
    id bigserial PRIMARY KEY,
    user_ids text NOT NULL,          -- the recipients, a Postgres array literal of user ids
    subject_id uuid,                 -- NULL for a user's own event (profile.updated)
    event text NOT NULL,
    data text NOT NULL,              -- the resource's JSON text, as the frame carries it
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_at timestamptz           -- set by the sweeper that is publishing the row
);
CREATE INDEX event_outbox_created_idx ON event_outbox (created_at);
