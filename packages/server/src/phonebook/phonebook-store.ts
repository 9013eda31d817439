import { ParleyError, PHONEBOOK_MAX_ENTRIES, type PhonebookEntry } from "@parley/protocol";
import { nowIso } from "../storage/database.js";
import type { SqlClient } from "../storage/sql-client.js";

interface EntryRow {
  id: number;
  target_id: number;
  username: string;
  display_name: string;
  label: string;
  notes: string;
  favourite: number;
  created_at: string;
}

type Fields = { label?: string; notes?: string; favourite?: boolean };

const SELECT = `SELECT p.id, p.target_id, u.username, u.display_name, p.label, p.notes, p.favourite, p.created_at
  FROM phonebook_entries p JOIN users u ON u.id = p.target_id`;

function toEntry(row: EntryRow): PhonebookEntry {
  return {
    id: row.id,
    userId: row.target_id,
    username: row.username,
    displayName: row.display_name,
    label: row.label,
    notes: row.notes,
    favourite: row.favourite === 1,
    createdAt: row.created_at,
  };
}

/** P3: each user's personal phone book. Entries point at users and follow their renames. */
export class PhonebookStore {
  readonly #sql: SqlClient;

  constructor(sql: SqlClient) {
    this.#sql = sql;
  }

  /** The same store inside a transaction. */
  in(tx: SqlClient): PhonebookStore {
    return new PhonebookStore(tx);
  }

  /** Favourites first, then by label (ASCII case folded) and username. */
  async list(ownerId: number): Promise<PhonebookEntry[]> {
    const rows = await this.#sql.all<EntryRow>(
      `${SELECT} WHERE p.owner_id = ? ORDER BY p.favourite DESC, lower(p.label), u.username`,
      [ownerId],
    );
    return rows.map(toEntry);
  }

  async get(ownerId: number, id: number): Promise<PhonebookEntry> {
    const row = await this.#sql.get<EntryRow>(`${SELECT} WHERE p.owner_id = ? AND p.id = ?`, [ownerId, id]);
    if (!row) throw new ParleyError("ENTRY_NOT_FOUND");
    return toEntry(row);
  }

  /** PHONEBOOK_FULL past PHONEBOOK_MAX_ENTRIES, ENTRY_EXISTS when the target is listed already. */
  add(ownerId: number, targetId: number, fields: Fields): Promise<PhonebookEntry> {
    return this.#sql.transaction(async (tx) => {
      const { n } = (await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM phonebook_entries WHERE owner_id = ?", [
        ownerId,
      ]))!;
      if (n >= PHONEBOOK_MAX_ENTRIES) throw new ParleyError("PHONEBOOK_FULL");
      const inserted = await tx.get<{ id: number }>(
        `INSERT INTO phonebook_entries (owner_id, target_id, label, notes, favourite, created_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner_id, target_id) DO NOTHING RETURNING id`,
        [ownerId, targetId, fields.label ?? "", fields.notes ?? "", fields.favourite ? 1 : 0, nowIso()],
      );
      if (!inserted) throw new ParleyError("ENTRY_EXISTS");
      return this.in(tx).get(ownerId, inserted.id);
    });
  }

  update(ownerId: number, id: number, fields: Fields): Promise<PhonebookEntry> {
    return this.#sql.transaction(async (tx) => {
      const store = this.in(tx);
      const current = await store.get(ownerId, id);
      await tx.run("UPDATE phonebook_entries SET label = ?, notes = ?, favourite = ? WHERE id = ? AND owner_id = ?", [
        fields.label ?? current.label,
        fields.notes ?? current.notes,
        (fields.favourite ?? current.favourite) ? 1 : 0,
        id,
        ownerId,
      ]);
      return store.get(ownerId, id);
    });
  }

  /** Users whose phone book lists `targetId`. */
  async ownersOf(targetId: number): Promise<number[]> {
    const rows = await this.#sql.all<{ owner_id: number }>(
      "SELECT owner_id FROM phonebook_entries WHERE target_id = ?",
      [targetId],
    );
    return rows.map((row) => row.owner_id);
  }

  async remove(ownerId: number, id: number): Promise<void> {
    const removed = await this.#sql.run("DELETE FROM phonebook_entries WHERE id = ? AND owner_id = ?", [id, ownerId]);
    if (removed === 0) throw new ParleyError("ENTRY_NOT_FOUND");
  }
}
