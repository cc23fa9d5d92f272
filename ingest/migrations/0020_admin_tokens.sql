-- Separation of the three administrators and API tokens (owner: dashboard).
--
-- A system administrator creates an account without a role; only a security administrator
-- grants it a role and scope (and nobody their own), so neither can make an account that
-- does the other's job alone. An account without a role cannot log in.
ALTER TABLE users ALTER COLUMN role DROP NOT NULL;
ALTER TABLE users ADD COLUMN created_by text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN role_granted_by text;
ALTER TABLE users ADD COLUMN role_granted_at timestamptz;

-- Tokens for machine clients (an uplink to a provincial platform, a script): a token acts as
-- its user, with the user's role and scope; only its SHA-256 is stored, the token is shown once.
CREATE TABLE api_tokens (
    id           serial PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    user_id      integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    revoked_by   text
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC);
