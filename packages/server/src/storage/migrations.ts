/**
 * Versioned schema migrations of the SQLite database. Each entry moves the schema from version i
 * to i+1; the current version is kept in SQLite's `user_version`. Entries are never edited once
 * released: a change is a new entry, here and in postgres-migrations.ts (the same version number
 * means the same schema on both).
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'away', 'busy')),
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_login_at TEXT
  );
  CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    device_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
  );
  CREATE INDEX sessions_user ON sessions(user_id);
  CREATE TABLE phonebook_entries (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    target_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    favourite INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (owner_id, target_id)
  );
  CREATE INDEX phonebook_owner ON phonebook_entries(owner_id);
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT,
    username TEXT,
    address TEXT,
    detail TEXT
  );
  CREATE INDEX audit_username ON audit_log(username);
  CREATE INDEX audit_action ON audit_log(action);
  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: call history
  `
  CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    caller_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    callee_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    caller_name TEXT NOT NULL,
    caller_display_name TEXT NOT NULL,
    callee_name TEXT NOT NULL,
    callee_display_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    answered_at TEXT,
    ended_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    end_reason TEXT
  );
  CREATE INDEX calls_caller ON calls(caller_id, created_at);
  CREATE INDEX calls_callee ON calls(callee_id, created_at);
  `,
  // 3: time on hold
  `
  ALTER TABLE calls ADD COLUMN held_ms INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: everyone invited to a call (conferences), with how it went for each; earlier calls are copied in
  `
  CREATE TABLE call_participants (
    call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('caller', 'callee')),
    outcome TEXT NOT NULL,
    joined_at TEXT,
    left_at TEXT NOT NULL,
    PRIMARY KEY (call_id, position)
  );
  CREATE INDEX call_participants_user ON call_participants(user_id);
  INSERT INTO call_participants (call_id, position, user_id, username, display_name, role, outcome, joined_at, left_at)
    SELECT id, 0, caller_id, caller_name, caller_display_name, 'caller', outcome, answered_at, ended_at FROM calls;
  INSERT INTO call_participants (call_id, position, user_id, username, display_name, role, outcome, joined_at, left_at)
    SELECT id, 1, callee_id, callee_name, callee_display_name, 'callee', outcome, answered_at, ended_at FROM calls;
  `,
  // 5: operator role
  `
  ALTER TABLE users ADD COLUMN operator INTEGER NOT NULL DEFAULT 0;
  `,
  // 6: retention finds old audit entries and calls by time
  `
  CREATE INDEX audit_at ON audit_log(at);
  CREATE INDEX calls_ended ON calls(ended_at);
  `,
  // 7: calls in progress, written when they start and kept current while they last (record: the
  // call as it stands, JSON), so a call the server's crash interrupts still reaches the history
  `
  CREATE TABLE calls_in_progress (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    last_alive_at TEXT NOT NULL
  );
  `,
  // 8: which server process runs each call in progress (several share one PostgreSQL database):
  // each marks its own calls alive, and only calls no process marks alive any more are interrupted
  `
  ALTER TABLE calls_in_progress ADD COLUMN node TEXT NOT NULL DEFAULT '';
  `,
];
