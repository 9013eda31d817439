import { createHash, randomBytes } from "node:crypto";
import type { Database } from "../storage/database.js";
import { nowIso } from "../storage/database.js";

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

/**
 * The `sessions` table: one row per logged-in device. A session is live until its `expires_at`
 * and, with an idle limit, while its `last_seen_at` is more recent than that limit; a dead row is
 * never handed out and is deleted when met or purged.
 */
export class SessionStore {
  readonly #db: Database;
  readonly #idleMs: number;

  constructor(db: Database, policy: SessionPolicy = {}) {
    this.#db = db;
    this.#idleMs = policy.idleMs ?? 0;
  }

  /** `last_seen_at` at or before this is idle ("" when there is no idle limit: no row is). */
  #idleCutoff(now: number): string {
    return this.#idleMs > 0 ? nowIso(now - this.#idleMs) : "";
  }

  create(userId: number, deviceName: string, ttlMs: number): { token: string; session: SessionRow } {
    const token = randomBytes(32).toString("base64url");
    const now = Date.now();
    const result = this.#db
      .prepare(
        "INSERT INTO sessions (user_id, token_hash, device_name, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(userId, hashToken(token), deviceName, nowIso(now), nowIso(now), nowIso(now + ttlMs));
    return { token, session: this.byId(Number(result.lastInsertRowid))! };
  }

  byId(id: number): SessionRow | undefined {
    return this.#db.prepare<[number], SessionRow>("SELECT * FROM sessions WHERE id = ?").get(id);
  }

  /** The live session for a token, or undefined if unknown, expired or idle (dead rows are removed). */
  byToken(token: string): SessionRow | undefined {
    const row = this.#db
      .prepare<[string], SessionRow>("SELECT * FROM sessions WHERE token_hash = ?")
      .get(hashToken(token));
    if (!row) return undefined;
    const now = Date.now();
    if (row.expires_at <= nowIso(now) || row.last_seen_at <= this.#idleCutoff(now)) {
      this.delete(row.id);
      return undefined;
    }
    return row;
  }

  /** The user's live sessions, oldest first. */
  ofUser(userId: number): SessionRow[] {
    const now = Date.now();
    return this.#db
      .prepare<[number, string, string], SessionRow>(
        "SELECT * FROM sessions WHERE user_id = ? AND expires_at > ? AND last_seen_at > ? ORDER BY id",
      )
      .all(userId, nowIso(now), this.#idleCutoff(now));
  }

  /** Marks sessions as used now (they do not go idle while in use). */
  touch(...ids: number[]): void {
    if (ids.length === 0) return;
    const update = this.#db.prepare("UPDATE sessions SET last_seen_at = ? WHERE id = ?");
    const now = nowIso();
    this.#db.transaction(() => {
      for (const id of ids) update.run(now, id);
    })();
  }

  /**
   * Keeps session `newest` and the user's `keep - 1` other most recently used sessions (ties: the
   * later created), and deletes the rest; returns the deleted ids.
   */
  trimUser(userId: number, newest: number, keep: number): number[] {
    return this.#db
      .prepare<[number, number, number], { id: number }>(
        `DELETE FROM sessions WHERE id IN (
           SELECT id FROM sessions WHERE user_id = ? AND id != ?
           ORDER BY last_seen_at DESC, id DESC LIMIT -1 OFFSET ?
         ) RETURNING id`,
      )
      .all(userId, newest, Math.max(0, keep - 1))
      .map((row) => row.id);
  }

  delete(id: number): void {
    this.#db.prepare("DELETE FROM sessions WHERE id = ?").run(id);
  }

  /** Deletes every session of the user except `keepId`; returns the deleted ids. */
  deleteAllOfUser(userId: number, keepId = 0): number[] {
    return this.#db
      .prepare<[number, number], { id: number }>("DELETE FROM sessions WHERE user_id = ? AND id != ? RETURNING id")
      .all(userId, keepId)
      .map((row) => row.id);
  }

  /** Deletes every expired or idle session; returns them. */
  purgeExpired(): EndedSession[] {
    const now = Date.now();
    return this.#db
      .prepare<[string, string], EndedSession>(
        "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ? RETURNING id, user_id",
      )
      .all(nowIso(now), this.#idleCutoff(now));
  }
}
