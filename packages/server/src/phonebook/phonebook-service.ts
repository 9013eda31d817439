import { ParleyError, type PhonebookEntry } from "@parley/protocol";
import type { AccountService } from "../accounts/account-service.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { Database } from "../storage/database.js";
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

  constructor(deps: { db: Database; accounts: AccountService; presence: PresenceService }) {
    this.store = new PhonebookStore(deps.db);
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    const ownersOfDeleted = new Map<number, number[]>();
    deps.accounts.on("userDeleting", (userId) => ownersOfDeleted.set(userId, this.store.ownersOf(userId)));
    deps.accounts.on("userRemoved", (userId) => {
      for (const owner of ownersOfDeleted.get(userId) ?? []) this.#push(owner);
      ownersOfDeleted.delete(userId);
    });
    deps.accounts.on("userUpdated", (row) => {
      for (const owner of this.store.ownersOf(row.id)) this.#push(owner);
    });
  }

  list(ownerId: number): PhonebookEntry[] {
    return this.store.list(ownerId);
  }

  add(ownerId: number, username: string, fields: Fields): PhonebookEntry {
    const target = this.#accounts.users.byName(username);
    if (!target || target.disabled) throw new ParleyError("USER_NOT_FOUND");
    const entry = this.store.add(ownerId, target.id, fields);
    this.#push(ownerId);
    return entry;
  }

  update(ownerId: number, id: number, fields: Fields): PhonebookEntry {
    const entry = this.store.update(ownerId, id, fields);
    this.#push(ownerId);
    return entry;
  }

  remove(ownerId: number, id: number): void {
    this.store.remove(ownerId, id);
    this.#push(ownerId);
  }

  #push(ownerId: number): void {
    if (this.#presence.devicesOf(ownerId).length === 0) return;
    this.#presence.pushToUser(ownerId, "phonebook.updated", { entries: this.store.list(ownerId) });
  }
}
