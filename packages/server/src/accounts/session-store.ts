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

/** The `sessions` table: one row per logged-in device. */
export class SessionStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
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

  /** The live session for a token, or undefined if unknown or expired (expired rows are removed). */
  byToken(token: string): SessionRow | undefined {
    const row = this.#db
      .prepare<[string], SessionRow>("SELECT * FROM sessions WHERE token_hash = ?")
      .get(hashToken(token));
    if (!row) return undefined;
    if (row.expires_at <= nowIso()) {
      this.delete(row.id);
      return undefined;
    }
    return row;
  }

  ofUser(userId: number): SessionRow[] {
    return this.#db
      .prepare<[number, string], SessionRow>("SELECT * FROM sessions WHERE user_id = ? AND expires_at > ? ORDER BY id")
      .all(userId, nowIso());
  }

  touch(id: number): void {
    this.#db.prepare("UPDATE sessions SET last_seen_at = ? WHERE id = ?").run(nowIso(), id);
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

  purgeExpired(): number {
    return this.#db.prepare("DELETE FROM sessions WHERE expires_at <= ?").run(nowIso()).changes;
  }
}
