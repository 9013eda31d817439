import { ParleyError, type PhonebookEntry } from "@parley/protocol";
import type { Logger } from "pino";
import type { AccountService } from "../accounts/account-service.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { SqlClient } from "../storage/sql-client.js";
import { PhonebookStore } from "./phonebook-store.js";

type Fields = { label?: string; notes?: string; favourite?: boolean };

/**
 * P3: phone book operations, each followed by `phonebook.updated` to the owner's connected
 * devices; also pushed to every owner when a contact renames or deletes their account.
 */
export class PhonebookService {
  readonly store: PhonebookStore;
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #logger: Logger;

  constructor(deps: { sql: SqlClient; accounts: AccountService; presence: PresenceService; logger: Logger }) {
    this.store = new PhonebookStore(deps.sql);
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#logger = deps.logger;
    // Whose phone books list a deleted account is read in its deletion's transaction, before the
    // entries go with it; they are told once it is gone.
    const ownersOfDeleted = new Map<number, number[]>();
    deps.accounts.beforeDelete(async (userId, tx) => {
      ownersOfDeleted.set(userId, await this.store.in(tx).ownersOf(userId));
    });
    deps.accounts.on("userRemoved", (userId) => {
      for (const owner of ownersOfDeleted.get(userId) ?? []) void this.#push(owner);
      ownersOfDeleted.delete(userId);
    });
    deps.accounts.on("userUpdated", (row) => {
      this.store.ownersOf(row.id).then(
        (owners) => {
          for (const owner of owners) void this.#push(owner);
        },
        (error: unknown) => this.#logger.warn({ err: error }, "phone books listing a changed account not updated"),
      );
    });
  }

  list(ownerId: number): Promise<PhonebookEntry[]> {
    return this.store.list(ownerId);
  }

  async add(ownerId: number, username: string, fields: Fields): Promise<PhonebookEntry> {
    const target = await this.#accounts.users.byName(username);
    if (!target || target.disabled) throw new ParleyError("USER_NOT_FOUND");
    const entry = await this.store.add(ownerId, target.id, fields);
    await this.#push(ownerId);
    return entry;
  }

  async update(ownerId: number, id: number, fields: Fields): Promise<PhonebookEntry> {
    const entry = await this.store.update(ownerId, id, fields);
    await this.#push(ownerId);
    return entry;
  }

  async remove(ownerId: number, id: number): Promise<void> {
    await this.store.remove(ownerId, id);
    await this.#push(ownerId);
  }

  /**
   * Sends the owner's connected devices their phone book as it now stands (before the reply to
   * the request that changed it, as the client expects); a failure is logged, never thrown.
   */
  async #push(ownerId: number): Promise<void> {
    if (this.#presence.devicesOf(ownerId).length === 0) return;
    await this.store.list(ownerId).then(
      (entries) => this.#presence.pushToUser(ownerId, "phonebook.updated", { entries }),
      (error: unknown) => this.#logger.warn({ err: error, ownerId }, "phone book update not pushed"),
    );
  }
}
