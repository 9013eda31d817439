import { createHash, randomBytes } from "node:crypto";
import { nowIso } from "../storage/database.js";
import { placeholders, type SqlClient } from "../storage/sql-client.js";

export interface SessionRow {
  id: number;
  user_id: number;
  token_hash: string;
  device_name: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
}

/** Tokens are 256 random bits; only their SHA-256 is stored, so a copy of the database logs nobody in. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** When sessions end besides their absolute expiry. */
export interface SessionPolicy {
  /** A session not used for this long is dead (0: never, only `expires_at` counts). */
  idleMs?: number;
}

/** A deleted session: which user's, so their connections can be told. */
export interface EndedSession {
  id: number;
  user_id: number;
}

/** Sessions marked used by one statement at most (a long IN list is split). */
const TOUCH_CHUNK = 500;

/**
 * The `sessions` table: one row per logged-in device. A session is live until its `expires_at`
 * and, with an idle limit, while its `last_seen_at` is more recent than that limit; a dead row is
 * never handed out and is deleted when met or purged.
 */
export class SessionStore {
  readonly #sql: SqlClient;
  readonly #idleMs: number;

  constructor(sql: SqlClient, policy: SessionPolicy = {}) {
    this.#sql = sql;
    this.#idleMs = policy.idleMs ?? 0;
  }

  /** The same store inside a transaction. */
  in(tx: SqlClient): SessionStore {
    return new SessionStore(tx, { idleMs: this.#idleMs });
  }

  /** `last_seen_at` at or before this is idle; undefined when there is no idle limit. */
  #idleCutoff(now: number): string | undefined {
    return this.#idleMs > 0 ? nowIso(now - this.#idleMs) : undefined;
  }

  async create(userId: number, deviceName: string, ttlMs: number): Promise<{ token: string; session: SessionRow }> {
    const token = randomBytes(32).toString("base64url");
    const now = Date.now();
    const session = await this.#sql.get<SessionRow>(
      `INSERT INTO sessions (user_id, token_hash, device_name, created_at, last_seen_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
      [userId, hashToken(token), deviceName, nowIso(now), nowIso(now), nowIso(now + ttlMs)],
    );
    return { token, session: session! };
  }

  byId(id: number): Promise<SessionRow | undefined> {
    return this.#sql.get<SessionRow>("SELECT * FROM sessions WHERE id = ?", [id]);
  }

  /** The live session for a token, or undefined if unknown, expired or idle (dead rows are removed). */
  async byToken(token: string): Promise<SessionRow | undefined> {
    const row = await this.#sql.get<SessionRow>("SELECT * FROM sessions WHERE token_hash = ?", [hashToken(token)]);
    if (!row) return undefined;
    const now = Date.now();
    const idle = this.#idleCutoff(now);
    if (row.expires_at <= nowIso(now) || (idle !== undefined && row.last_seen_at <= idle)) {
      await this.delete(row.id);
      return undefined;
    }
    return row;
  }

  /** The user's live sessions, oldest first. */
  ofUser(userId: number): Promise<SessionRow[]> {
    const now = Date.now();
    const idle = this.#idleCutoff(now);
    return this.#sql.all<SessionRow>(
      `SELECT * FROM sessions WHERE user_id = ? AND expires_at > ? ${idle !== undefined ? "AND last_seen_at > ?" : ""}
       ORDER BY id`,
      idle !== undefined ? [userId, nowIso(now), idle] : [userId, nowIso(now)],
    );
  }

  /**
   * Marks sessions as used now (they do not go idle while in use); resolves with those of `ids`
   * that still exist (a session another Parley node ended is missing).
   */
  async touch(...ids: number[]): Promise<number[]> {
    const now = nowIso();
    const touched: number[] = [];
    for (let i = 0; i < ids.length; i += TOUCH_CHUNK) {
      const chunk = ids.slice(i, i + TOUCH_CHUNK);
      const rows = await this.#sql.all<{ id: number }>(
        `UPDATE sessions SET last_seen_at = ? WHERE id IN (${placeholders(chunk.length)}) RETURNING id`,
        [now, ...chunk],
      );
      for (const row of rows) touched.push(row.id);
    }
    return touched;
  }

  /**
   * Keeps session `newest` and the user's `keep - 1` other most recently used sessions (ties: the
   * later created), and deletes the rest; resolves with the deleted ids.
   */
  async trimUser(userId: number, newest: number, keep: number): Promise<number[]> {
    const rows = await this.#sql.all<{ id: number }>(
      `DELETE FROM sessions WHERE user_id = ? AND id != ? AND id NOT IN (
         SELECT id FROM sessions WHERE user_id = ? AND id != ? ORDER BY last_seen_at DESC, id DESC LIMIT ?
       ) RETURNING id`,
      [userId, newest, userId, newest, Math.max(0, keep - 1)],
    );
    return rows.map((row) => row.id);
  }

  async delete(id: number): Promise<void> {
    await this.#sql.run("DELETE FROM sessions WHERE id = ?", [id]);
  }

  /** Deletes every session of the user except `keepId`; resolves with the deleted ids. */
  async deleteAllOfUser(userId: number, keepId = 0): Promise<number[]> {
    const rows = await this.#sql.all<{ id: number }>(
      "DELETE FROM sessions WHERE user_id = ? AND id != ? RETURNING id",
      [userId, keepId],
    );
    return rows.map((row) => row.id);
  }

  /** Deletes every expired or idle session; resolves with them. */
  purgeExpired(): Promise<EndedSession[]> {
    const now = Date.now();
    const idle = this.#idleCutoff(now);
    return this.#sql.all<EndedSession>(
      `DELETE FROM sessions WHERE expires_at <= ? ${idle !== undefined ? "OR last_seen_at <= ?" : ""}
       RETURNING id, user_id`,
      idle !== undefined ? [nowIso(now), idle] : [nowIso(now)],
    );
  }
}
