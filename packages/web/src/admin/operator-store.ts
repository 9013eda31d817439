import type { ParleyClient } from "@parley/client";
import type { OperatorRequests, OperatorSnapshot, RequestParams, RequestResult } from "@parley/protocol";
import { errorCodeOf, NotConnectedError } from "../state/errors.js";
import type { SoftphoneStore } from "../state/store.js";

export type OperatorAccess = "checking" | "granted" | "denied";

export interface OperatorState {
  /** `denied` when the signed-in account is not an operator (no operator request is sent then). */
  access: OperatorAccess;
  /** The latest live view (pushed every second); undefined until the first arrives. */
  snapshot: OperatorSnapshot | undefined;
  /** The subscription failed for another reason (shown, retried on the next reconnect). */
  error: unknown;
}

/**
 * The operator console's state: rides on the softphone store's sign-in and SDK client. Once
 * signed in as an operator and connected, it sends `operator.subscribe` and keeps the latest
 * `operator.snapshot` pushed by the server; it subscribes again after a reconnect, and drops
 * everything when the role is revoked (`account.updated`) or the server answers NOT_OPERATOR.
 */
export class OperatorStore {
  #state: OperatorState = { access: "checking", snapshot: undefined, error: undefined };
  readonly #listeners = new Set<() => void>();
  readonly #softphone: SoftphoneStore;
  /** The client whose events we listen to, and whether this connection of it is subscribed. */
  #client: ParleyClient | undefined;
  #detach: (() => void) | undefined;
  #subscribed = false;

  constructor(softphone: SoftphoneStore) {
    this.#softphone = softphone;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly getState = (): OperatorState => this.#state;

  #set(patch: Partial<OperatorState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of [...this.#listeners]) listener();
  }

  /** Follows the softphone store; returns the stop function (for a React effect). */
  start(): () => void {
    const off = this.#softphone.subscribe(() => this.#sync());
    this.#sync();
    return () => {
      off();
      this.#detach?.();
      this.#detach = undefined;
      this.#client = undefined;
      this.#subscribed = false;
    };
  }

  #sync(): void {
    const state = this.#softphone.getState();
    const client = this.#softphone.client;
    if (client !== this.#client) {
      this.#detach?.();
      this.#client = client;
      this.#subscribed = false;
      this.#detach = client?.on("event", (message) => {
        if (message.event === "operator.snapshot" && this.#client === client && this.#state.access === "granted")
          this.#set({ snapshot: message.data });
      });
    }
    if (state.phase !== "signedIn" || !state.self) {
      this.#subscribed = false;
      if (this.#state.access !== "checking" || this.#state.snapshot)
        this.#set({ access: "checking", snapshot: undefined, error: undefined });
      return;
    }
    if (!state.self.operator) {
      this.#subscribed = false;
      if (this.#state.access !== "denied") this.#set({ access: "denied", snapshot: undefined, error: undefined });
      return;
    }
    if (state.connection !== "connected") {
      // The server forgets subscriptions with the connection: subscribe again once back.
      this.#subscribed = false;
      return;
    }
    if (!this.#subscribed && client) {
      this.#subscribed = true;
      void this.#subscribeOn(client);
    }
  }

  async #subscribeOn(client: ParleyClient): Promise<void> {
    try {
      const snapshot = await client.request("operator.subscribe", {});
      if (this.#client === client) this.#set({ access: "granted", snapshot, error: undefined });
    } catch (error) {
      if (this.#client !== client) return;
      if (errorCodeOf(error) === "NOT_OPERATOR") this.#set({ access: "denied", snapshot: undefined, error: undefined });
      else {
        this.#subscribed = false;
        this.#set({ error });
      }
    }
  }

  /** Sends an operator request on the signed-in connection. */
  async request<T extends keyof typeof OperatorRequests>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    const client = this.#softphone.client;
    if (client?.connectionState !== "connected") throw new NotConnectedError();
    try {
      return await client.request(type, params);
    } catch (error) {
      if (errorCodeOf(error) === "NOT_OPERATOR") this.#set({ access: "denied", snapshot: undefined });
      throw error;
    }
  }
}
