import type { SessionSlice } from "./session-slice.js";

/** Changes to my account (name, username, password) and the list of my signed-in devices. */
export class AccountSlice {
  readonly #session: SessionSlice;

  constructor(session: SessionSlice) {
    this.#session = session;
  }

  async setDisplayName(displayName: string): Promise<void> {
    const self = await this.#session
      .requireClient()
      .request("account.setDisplayName", { displayName: displayName.trim() });
    this.#session.selfChanged(self);
  }

  async setUsername(username: string): Promise<void> {
    const self = await this.#session.requireClient().request("account.setUsername", { username: username.trim() });
    this.#session.selfChanged(self);
  }

  async changePassword(oldPassword: string, newPassword: string): Promise<void> {
    await this.#session.requireClient().request("account.changePassword", { oldPassword, newPassword });
  }

  async sessions() {
    return (await this.#session.requireClient().request("account.sessions", {})).sessions;
  }
}
