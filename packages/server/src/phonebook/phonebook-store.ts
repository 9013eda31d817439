import { ParleyError, PHONEBOOK_MAX_ENTRIES, type PhonebookEntry } from "@parley/protocol";
import type { Database } from "../storage/database.js";
import { nowIso } from "../storage/database.js";

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
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  list(ownerId: number): PhonebookEntry[] {
    return this.#db
      .prepare<[number], EntryRow>(
        `${SELECT} WHERE p.owner_id = ? ORDER BY p.favourite DESC, lower(p.label), u.username`,
      )
      .all(ownerId)
      .map(toEntry);
  }

  get(ownerId: number, id: number): PhonebookEntry {
    const row = this.#db
      .prepare<[number, number], EntryRow>(`${SELECT} WHERE p.owner_id = ? AND p.id = ?`)
      .get(ownerId, id);
    if (!row) throw new ParleyError("ENTRY_NOT_FOUND");
    return toEntry(row);
  }

  add(
    ownerId: number,
    targetId: number,
    fields: { label?: string; notes?: string; favourite?: boolean },
  ): PhonebookEntry {
    const count = (
      this.#db.prepare("SELECT COUNT(*) AS n FROM phonebook_entries WHERE owner_id = ?").get(ownerId) as { n: number }
    ).n;
    if (count >= PHONEBOOK_MAX_ENTRIES) throw new ParleyError("PHONEBOOK_FULL");
    const result = this.#db
      .prepare(
        `INSERT INTO phonebook_entries (owner_id, target_id, label, notes, favourite, created_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(owner_id, target_id) DO NOTHING`,
      )
      .run(ownerId, targetId, fields.label ?? "", fields.notes ?? "", fields.favourite ? 1 : 0, nowIso());
    if (result.changes === 0) throw new ParleyError("ENTRY_EXISTS");
    return this.get(ownerId, Number(result.lastInsertRowid));
  }

  update(ownerId: number, id: number, fields: { label?: string; notes?: string; favourite?: boolean }): PhonebookEntry {
    const current = this.get(ownerId, id);
    this.#db
      .prepare("UPDATE phonebook_entries SET label = ?, notes = ?, favourite = ? WHERE id = ? AND owner_id = ?")
      .run(
        fields.label ?? current.label,
        fields.notes ?? current.notes,
        (fields.favourite ?? current.favourite) ? 1 : 0,
        id,
        ownerId,
      );
    return this.get(ownerId, id);
  }

  /** Users whose phone book lists `targetId`. */
  ownersOf(targetId: number): number[] {
    return this.#db
      .prepare<[number], { owner_id: number }>("SELECT owner_id FROM phonebook_entries WHERE target_id = ?")
      .all(targetId)
      .map((row) => row.owner_id);
  }

  remove(ownerId: number, id: number): void {
    const result = this.#db.prepare("DELETE FROM phonebook_entries WHERE id = ? AND owner_id = ?").run(id, ownerId);
    if (result.changes === 0) throw new ParleyError("ENTRY_NOT_FOUND");
  }
}
