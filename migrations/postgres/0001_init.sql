-- Tessera's schema. Times are unix seconds (BIGINT); ids, hashes and JSON are TEXT.
-- Every secret-bearing value (client secrets, codes, refresh tokens, session
-- ids) is stored only as a hash.

CREATE TABLE clients (
    client_id           TEXT PRIMARY KEY,
    -- Argon2id PHC string; NULL for public clients (token_endpoint_auth_method none).
    secret_hash         TEXT,
    -- The effective RFC 7591 metadata, JSON.
    metadata            TEXT NOT NULL,
    client_id_issued_at BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX clients_by_issued_at ON clients (client_id_issued_at, client_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256', 'EdDSA')),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'retired')),
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retiring_at  BIGINT,
    retired_at   BIGINT
);
-- One signing key per algorithm, whatever the instances race to do.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE state = 'active';

CREATE TABLE users (
    sub            TEXT PRIMARY KEY,
    email          TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name           TEXT,
    picture        TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    disabled_at    BIGINT
);
CREATE INDEX users_by_email ON users (email);

-- Users are linked to the upstream only by (issuer, subject), never by email.
CREATE TABLE upstream_links (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    sub           TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX upstream_links_by_user ON upstream_links (sub);

-- An upstream login in flight: Tessera's state, nonce and PKCE verifier toward
-- the upstream, bound to the browser, and the /authorize request to resume.
CREATE TABLE login_requests (
    state_hash      TEXT PRIMARY KEY,
    browser_hash    TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    pkce_verifier   TEXT NOT NULL,
    request         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX login_requests_by_expiry ON login_requests (expires_at);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    -- The public session id (the `sid` claim); not a credential.
    sid        TEXT NOT NULL UNIQUE,
    sub        TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX sessions_by_user ON sessions (sub);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE consents (
    sub        TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sub, client_id)
);
CREATE INDEX consents_by_client ON consents (client_id);

-- A refresh-token family: everything one authorization grant issued.
CREATE TABLE refresh_families (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    sub            TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    sid            TEXT,
    scope          TEXT NOT NULL,
    -- JSON array of audiences (RFC 8707 resources).
    audience       TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_by_user ON refresh_families (sub);
CREATE INDEX refresh_families_by_client ON refresh_families (client_id);
CREATE INDEX refresh_families_by_expiry ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- Set by the one conditional UPDATE that redeems it; a second use is a replay.
    used_at     BIGINT,
    -- The access token issued with it, revoked on reuse.
    access_jti  TEXT,
    access_exp  BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    sub            TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    sid            TEXT,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    audience       TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    -- What the first redemption issued, revoked if the code is replayed.
    family_id      TEXT REFERENCES refresh_families (id) ON DELETE SET NULL,
    access_jti     TEXT,
    access_exp     BIGINT
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

-- Revoked access tokens, kept until the token would have expired anyway.
CREATE TABLE revoked_jtis (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_jtis_by_expiry ON revoked_jtis (expires_at);
CREATE INDEX revoked_jtis_by_revoked_at ON revoked_jtis (revoked_at);

CREATE TABLE audit_events (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    type      TEXT NOT NULL,
    client_id TEXT,
    sub       TEXT,
    -- JSON object of further fields; never secrets or tokens.
    data      TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (at);
CREATE INDEX audit_events_by_type ON audit_events (type, at);
CREATE INDEX audit_events_by_client ON audit_events (client_id, at);
CREATE INDEX audit_events_by_user ON audit_events (sub, at);
