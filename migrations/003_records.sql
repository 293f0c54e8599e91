-- Notes and feeding logs, owned by a user (deleted with them), and the idempotency records
-- of their POSTs. Every list query is index-backed: (user_id, sort key, id).
CREATE TABLE notes (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body       text        NOT NULL DEFAULT '' CHECK (char_length(body) <= 100000),
    tags       text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    pinned     boolean     NOT NULL DEFAULT false,
    version    integer     NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    search     tsvector    GENERATED ALWAYS AS (
                   setweight(to_tsvector('english', title), 'A') ||
                   setweight(to_tsvector('english', body), 'B')) STORED
);

CREATE INDEX notes_user_order_idx ON notes (user_id, pinned DESC, updated_at DESC, id DESC);
CREATE INDEX notes_search_idx ON notes USING gin (search);
CREATE INDEX notes_tags_idx ON notes USING gin (tags);

CREATE TABLE feedings (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount_ml  integer     NOT NULL CHECK (amount_ml BETWEEN 1 AND 2000),
    kind       text        NOT NULL DEFAULT 'food'
                           CHECK (kind IN ('formula', 'milk', 'water', 'food', 'medication', 'other')),
    given_at   timestamptz NOT NULL DEFAULT now(),
    note       text        CHECK (note IS NULL OR char_length(note) <= 1000),
    version    integer     NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX feedings_user_given_idx ON feedings (user_id, given_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method       text        NOT NULL,
    path         text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    location     text,
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, method, path, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
