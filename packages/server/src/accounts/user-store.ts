import type { SelectableStatus, Self } from "@parley/protocol";
import { nowIso } from "../storage/database.js";
import { type SqlClient, UniqueViolation } from "../storage/sql-client.js";

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

/**
 * The `users` table. Usernames are stored lower-case and unique: the database's unique index is
 * what decides between two registrations of one name (two requests, or two Parley nodes), never
 * a check made before.
 */
export class UserStore {
  readonly #sql: SqlClient;

  constructor(sql: SqlClient) {
    this.#sql = sql;
  }

  /** The same store inside a transaction. */
  in(tx: SqlClient): UserStore {
    return new UserStore(tx);
  }

  byId(id: number): Promise<UserRow | undefined> {
    return this.#sql.get<UserRow>("SELECT * FROM users WHERE id = ?", [id]);
  }

  byName(username: string): Promise<UserRow | undefined> {
    return this.#sql.get<UserRow>("SELECT * FROM users WHERE username = ?", [username.toLowerCase()]);
  }

  all(): Promise<UserRow[]> {
    return this.#sql.all<UserRow>("SELECT * FROM users ORDER BY username");
  }

  enabled(): Promise<UserRow[]> {
    return this.#sql.all<UserRow>("SELECT * FROM users WHERE disabled = 0 ORDER BY username");
  }

  async count(): Promise<number> {
    return (await this.#sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM users"))!.n;
  }

  /** Resolves with undefined when the username is taken. */
  create(username: string, displayName: string, passwordHash: string): Promise<UserRow | undefined> {
    return this.#sql.get<UserRow>(
      `INSERT INTO users (username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (username) DO NOTHING RETURNING *`,
      [username, displayName, passwordHash, nowIso()],
    );
  }

  async setDisplayName(id: number, displayName: string): Promise<void> {
    await this.#sql.run("UPDATE users SET display_name = ? WHERE id = ?", [displayName, id]);
  }

  /** Resolves with false when the username is taken. */
  async setUsername(id: number, username: string): Promise<boolean> {
    try {
      await this.#sql.run("UPDATE users SET username = ? WHERE id = ?", [username, id]);
      return true;
    } catch (error) {
      if (error instanceof UniqueViolation) return false;
      throw error;
    }
  }

  async setPasswordHash(id: number, hash: string): Promise<void> {
    await this.#sql.run("UPDATE users SET password_hash = ? WHERE id = ?", [hash, id]);
  }

  async setStatus(id: number, status: SelectableStatus): Promise<void> {
    await this.#sql.run("UPDATE users SET status = ? WHERE id = ?", [status, id]);
  }

  async setDisabled(id: number, disabled: boolean): Promise<void> {
    await this.#sql.run("UPDATE users SET disabled = ? WHERE id = ?", [disabled ? 1 : 0, id]);
  }

  async setOperator(id: number, operator: boolean): Promise<void> {
    await this.#sql.run("UPDATE users SET operator = ? WHERE id = ?", [operator ? 1 : 0, id]);
  }

  async touchLogin(id: number): Promise<void> {
    await this.#sql.run("UPDATE users SET last_login_at = ? WHERE id = ?", [nowIso(), id]);
  }

  async delete(id: number): Promise<void> {
    await this.#sql.run("DELETE FROM users WHERE id = ?", [id]);
  }
}
