import type { Database } from "./database.js";

/** Key/value settings the operator changes at run time (e.g. self-signup). */
export class SettingsStore {
  readonly #get;
  readonly #set;

  constructor(db: Database) {
    this.#get = db.prepare<[string], { value: string }>("SELECT value FROM settings WHERE key = ?");
    this.#set = db.prepare<[string, string]>(
      "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    );
  }

  get(key: string): string | undefined {
    return this.#get.get(key)?.value;
  }

  set(key: string, value: string): void {
    this.#set.run(key, value);
  }
}
