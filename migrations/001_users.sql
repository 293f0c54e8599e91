-- Users: the owner of every other row. Emails are unique case-insensitively; the
-- application stores them trimmed and lower-cased, and the index enforces it anyway.
CREATE TABLE users (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash   text        NOT NULL,
    display_name    text        CHECK (display_name IS NULL OR char_length(display_name) <= 100),
    timezone        text        NOT NULL DEFAULT 'UTC',
    daily_target_ml integer     NOT NULL DEFAULT 0 CHECK (daily_target_ml BETWEEN 0 AND 10000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
