import type { PhonebookEntry, RequestParams } from "@parley/protocol";
import type { ClientAccess } from "./softphone-state.js";

/** Changes to the phone book; the list itself arrives from the SDK (`phonebook`, kept by the session). */
export class PhonebookSlice {
  readonly #session: ClientAccess;

  constructor(session: ClientAccess) {
    this.#session = session;
  }

  async add(params: RequestParams<"phonebook.add">): Promise<PhonebookEntry> {
    return this.#session.requireClient().request("phonebook.add", params);
  }

  async update(params: RequestParams<"phonebook.update">): Promise<PhonebookEntry> {
    return this.#session.requireClient().request("phonebook.update", params);
  }

  async remove(id: number): Promise<void> {
    await this.#session.requireClient().request("phonebook.remove", { id });
  }
}
