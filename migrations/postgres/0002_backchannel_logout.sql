-- Back-Channel Logout 1.0: the clients each browser session signed in to,
-- and the logout tokens still to deliver (a durable outbox).

-- Copied from the metadata so that a logout finds the clients to notify in SQL.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
UPDATE clients SET backchannel_logout_uri = metadata::jsonb ->> 'backchannel_logout_uri';

-- Written with each authorization code issued in a session.
CREATE TABLE session_clients (
    sid        TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX session_clients_by_client ON session_clients (client_id);

-- Written in the transaction that ends the session; deleted once delivered
-- or given up. An instance leases a row (locked_until) while it delivers.
CREATE TABLE logout_deliveries (
    sid             TEXT NOT NULL,
    client_id       TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    sub             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at);
