-- Care circles: a subject is who or what is cared for; its members share its records with a
-- role each; invitations bring new members in. Feedings and notes belong to a subject and
-- name the member who logged them (created_by, null once that account is deleted).
-- Every existing user gets a default subject that takes over their records and target.
CREATE TABLE subjects (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    kind            text        NOT NULL DEFAULT 'other'
                                CHECK (kind IN ('baby', 'child', 'adult', 'cat', 'dog', 'pet', 'other')),
    birth_date      date,
    timezone        text        NOT NULL DEFAULT 'UTC',
    daily_target_ml integer     NOT NULL DEFAULT 0 CHECK (daily_target_ml BETWEEN 0 AND 10000),
    version         integer     NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subject_members (
    subject_id uuid        NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'caregiver', 'viewer')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_id, user_id)
);

-- A user's subjects, oldest first, with the role in the index (membership checks are
-- index-only lookups on the primary key; this one serves the lists).
CREATE INDEX subject_members_user_idx ON subject_members (user_id, joined_at, subject_id) INCLUDE (role);

-- Only a hash of the code is kept (SHA-256 of the code's bytes); a used invitation keeps its
-- row (used_at) so that reuse is told apart from nothing, but both answer 404.
CREATE TABLE invitations (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    subject_id uuid        NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('caregiver', 'viewer')),
    code_hash  bytea       NOT NULL UNIQUE,
    created_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    used_by    uuid        REFERENCES users (id) ON DELETE SET NULL
);

CREATE INDEX invitations_subject_idx ON invitations (subject_id, created_at, id);

-- The default subject of every existing user, named after them, with their zone and target.
ALTER TABLE users ADD COLUMN default_subject_id uuid;
UPDATE users SET default_subject_id = gen_random_uuid();
INSERT INTO subjects (id, name, kind, timezone, daily_target_ml, created_at, updated_at)
SELECT default_subject_id,
       COALESCE(NULLIF(left(btrim(display_name), 80), ''), 'My log'),
       'other', timezone, daily_target_ml, created_at, now()
  FROM users;
INSERT INTO subject_members (subject_id, user_id, role, joined_at)
SELECT default_subject_id, id, 'owner', created_at FROM users;
ALTER TABLE users
    ADD CONSTRAINT users_default_subject_fk FOREIGN KEY (default_subject_id)
        REFERENCES subjects (id) ON DELETE SET NULL;
-- The target now lives on the subject; user.daily_target_ml is the default subject's.
ALTER TABLE users DROP COLUMN daily_target_ml;

-- Records: user_id becomes created_by (kept when the account goes only as null), and the
-- subject owns them.
ALTER TABLE notes ADD COLUMN subject_id uuid;
UPDATE notes n SET subject_id = u.default_subject_id FROM users u WHERE u.id = n.user_id;
ALTER TABLE notes ALTER COLUMN subject_id SET NOT NULL,
    ADD CONSTRAINT notes_subject_fk FOREIGN KEY (subject_id) REFERENCES subjects (id) ON DELETE CASCADE;
ALTER TABLE notes DROP CONSTRAINT notes_user_id_fkey;
ALTER TABLE notes RENAME COLUMN user_id TO created_by;
ALTER TABLE notes ALTER COLUMN created_by DROP NOT NULL,
    ADD CONSTRAINT notes_created_by_fk FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;
DROP INDEX notes_user_order_idx;
CREATE INDEX notes_subject_order_idx ON notes (subject_id, pinned DESC, updated_at DESC, id DESC);
CREATE INDEX notes_created_by_idx ON notes (created_by);

ALTER TABLE feedings ADD COLUMN subject_id uuid;
UPDATE feedings f SET subject_id = u.default_subject_id FROM users u WHERE u.id = f.user_id;
ALTER TABLE feedings ALTER COLUMN subject_id SET NOT NULL,
    ADD CONSTRAINT feedings_subject_fk FOREIGN KEY (subject_id) REFERENCES subjects (id) ON DELETE CASCADE;
ALTER TABLE feedings DROP CONSTRAINT feedings_user_id_fkey;
ALTER TABLE feedings RENAME COLUMN user_id TO created_by;
ALTER TABLE feedings ALTER COLUMN created_by DROP NOT NULL,
    ADD CONSTRAINT feedings_created_by_fk FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;
DROP INDEX feedings_user_given_idx;
CREATE INDEX feedings_subject_given_idx ON feedings (subject_id, given_at DESC, id DESC);
CREATE INDEX feedings_created_by_idx ON feedings (created_by);

-- Tokens restricted to some subjects (NULL: every subject of the user).
ALTER TABLE api_tokens ADD COLUMN subject_ids uuid[]
    CHECK (subject_ids IS NULL OR cardinality(subject_ids) BETWEEN 1 AND 50);

-- Deleting a subject sets users.default_subject_id to NULL where it points at it (before the
-- repair in the same statement): without this index every deletion would scan users.
CREATE INDEX users_default_subject_idx ON users (default_subject_id);
