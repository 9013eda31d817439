import type { SelectableStatus, Self } from "@parley/protocol";
import type { Database } from "../storage/database.js";
import { nowIso } from "../storage/database.js";

export interface UserRow {
  id: number;
  username: string;
  display_name: string;
  password_hash: string;
  status: SelectableStatus;
  disabled: number;
  /** 1 when the account has the operator role (the web operator console). */
  operator: number;
  created_at: string;
  last_login_at: string | null;
}

export function toSelf(row: UserRow): Self {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    status: row.status,
    createdAt: row.created_at,
    operator: row.operator === 1,
  };
}

/** The `users` table. Usernames are stored lower-case and unique. */
export class UserStore {
  readonly #db: Database;
  readonly #byId;
  readonly #byName;

  constructor(db: Database) {
    this.#db = db;
    this.#byId = db.prepare<[number], UserRow>("SELECT * FROM users WHERE id = ?");
    this.#byName = db.prepare<[string], UserRow>("SELECT * FROM users WHERE username = ?");
  }

  byId(id: number): UserRow | undefined {
    return this.#byId.get(id);
  }

  byName(username: string): UserRow | undefined {
    return this.#byName.get(username.toLowerCase());
  }

  all(): UserRow[] {
    return this.#db.prepare<[], UserRow>("SELECT * FROM users ORDER BY username").all();
  }

  enabled(): UserRow[] {
    return this.#db.prepare<[], UserRow>("SELECT * FROM users WHERE disabled = 0 ORDER BY username").all();
  }

  count(): number {
    return (this.#db.prepare("SELECT COUNT(*) AS n FROM users").get() as { n: number }).n;
  }

  /** Returns undefined when the username is taken. */
  create(username: string, displayName: string, passwordHash: string): UserRow | undefined {
    const result = this.#db
      .prepare(
        "INSERT INTO users (username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(username) DO NOTHING",
      )
      .run(username, displayName, passwordHash, nowIso());
    return result.changes === 0 ? undefined : this.byId(Number(result.lastInsertRowid));
  }

  setDisplayName(id: number, displayName: string): void {
    this.#db.prepare("UPDATE users SET display_name = ? WHERE id = ?").run(displayName, id);
  }

  /** Returns false when the username is taken. */
  setUsername(id: number, username: string): boolean {
    const taken = this.byName(username);
    if (taken && taken.id !== id) return false;
    this.#db.prepare("UPDATE users SET username = ? WHERE id = ?").run(username, id);
    return true;
  }

  setPasswordHash(id: number, hash: string): void {
    this.#db.prepare("UPDATE users SET password_hash = ? WHERE id = ?").run(hash, id);
  }

  setStatus(id: number, status: SelectableStatus): void {
    this.#db.prepare("UPDATE users SET status = ? WHERE id = ?").run(status, id);
  }

  setDisabled(id: number, disabled: boolean): void {
    this.#db.prepare("UPDATE users SET disabled = ? WHERE id = ?").run(disabled ? 1 : 0, id);
  }

  setOperator(id: number, operator: boolean): void {
    this.#db.prepare("UPDATE users SET operator = ? WHERE id = ?").run(operator ? 1 : 0, id);
  }

  touchLogin(id: number): void {
    this.#db.prepare("UPDATE users SET last_login_at = ? WHERE id = ?").run(nowIso(), id);
  }

  delete(id: number): void {
    this.#db.prepare("DELETE FROM users WHERE id = ?").run(id);
  }
}
