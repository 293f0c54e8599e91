-- Personal access tokens: only a hash of the secret is stored. scopes is a bit set:
-- 1 = read (GET/HEAD), 2 = write (POST/PATCH/DELETE).
CREATE TABLE api_tokens (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash   bytea       NOT NULL UNIQUE,
    scopes       smallint    NOT NULL CHECK (scopes BETWEEN 1 AND 3),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz
);

CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC, id DESC);
