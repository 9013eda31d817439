import type { SqlClient } from "./sql-client.js";

/** Key/value settings the operator changes at run time (e.g. self-signup), shared by every Parley node. */
export class SettingsStore {
  readonly #sql: SqlClient;

  constructor(sql: SqlClient) {
    this.#sql = sql;
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.#sql.get<{ value: string }>("SELECT value FROM settings WHERE key = ?", [key]))?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.#sql.run(
      "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      [key, value],
    );
  }

  /**
   * Stores `value` unless the key has one; resolves with the value stored either way (two nodes
   * starting at once agree on the first one written).
   */
  async setIfAbsent(key: string, value: string): Promise<string> {
    await this.#sql.run("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [key, value]);
    return (await this.get(key)) ?? value;
  }
}
