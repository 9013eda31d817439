import type { Logger } from "pino";
import type { AccountService } from "../accounts/account-service.js";
import type { UserRow } from "../accounts/user-store.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { Cluster } from "./cluster.js";

/** Changes to the directory (accounts added, changed, removed) travel here between nodes. */
export const DIRECTORY_CHANNEL = "parley:directory";

/** A user's directory entry changed on node `from`; the row itself is read from the shared database. */
interface DirectoryMessage {
  from: string;
  kind: "added" | "updated" | "removed";
  userId: number;
}

/**
 * The directory across a cluster: an account registered, renamed, disabled or deleted through one
 * node reaches the clients of every node as `directory.userAdded` / `userUpdated` / `userRemoved`
 * (and `account.updated` to the user's own devices elsewhere), as it does on one node. The message
 * carries only the user id and what happened; each node reads the row from PostgreSQL, which all
 * share, so the entry it announces has its own view of the user's presence. Published once per
 * change, not per client; a message lost while Redis is away is made good by the clients'
 * `directory.list` when they reconnect.
 */
export class DirectoryBus {
  readonly #node: string;
  readonly #cluster: Cluster;
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #logger: Logger;
  readonly #onMessage = (channel: string, message: string) => {
    if (channel === DIRECTORY_CHANNEL) void this.#received(message);
  };
  /** Stops listening to this node's account changes. */
  #unlisten: (() => void)[] = [];
  #closed = false;

  private constructor(deps: { cluster: Cluster; accounts: AccountService; presence: PresenceService; logger: Logger }) {
    this.#node = deps.cluster.nodeId;
    this.#cluster = deps.cluster;
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#logger = deps.logger;
  }

  /** Subscribes to DIRECTORY_CHANNEL and shares this node's account changes on it. */
  static async start(deps: {
    cluster: Cluster;
    accounts: AccountService;
    presence: PresenceService;
    logger: Logger;
  }): Promise<DirectoryBus> {
    const bus = new DirectoryBus(deps);
    const { subscriber } = deps.cluster.connections;
    subscriber.on("message", bus.#onMessage);
    await subscriber.subscribe(DIRECTORY_CHANNEL);
    bus.#unlisten = [
      deps.accounts.on("userAdded", (row) => bus.#publish("added", row.id)),
      deps.accounts.on("userUpdated", (row) => bus.#publish("updated", row.id)),
      deps.accounts.on("userRemoved", (userId) => bus.#publish("removed", userId)),
    ];
    return bus;
  }

  /** Stops sharing and hearing directory changes. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const unlisten of this.#unlisten) unlisten();
    const { subscriber } = this.#cluster.connections;
    subscriber.off("message", this.#onMessage);
    if (subscriber.status === "ready") await subscriber.unsubscribe(DIRECTORY_CHANNEL).catch(() => undefined);
  }

  #publish(kind: DirectoryMessage["kind"], userId: number): void {
    if (this.#closed) return;
    const message: DirectoryMessage = { from: this.#node, kind, userId };
    this.#cluster.connections.redis.publish(DIRECTORY_CHANNEL, JSON.stringify(message)).catch((error: unknown) => {
      this.#logger.warn({ err: error, kind, userId }, "directory change not shared: Redis unreachable");
    });
  }

  async #received(json: string): Promise<void> {
    let message: DirectoryMessage;
    try {
      message = JSON.parse(json) as DirectoryMessage;
    } catch {
      return;
    }
    if (this.#closed || message.from === this.#node || !Number.isInteger(message.userId)) return;
    if (message.kind === "removed") {
      this.#presence.userRemoved(message.userId);
      return;
    }
    if (message.kind !== "added" && message.kind !== "updated") return;
    let row: UserRow | undefined;
    try {
      row = await this.#accounts.users.byId(message.userId);
    } catch (error) {
      this.#logger.warn({ err: error, userId: message.userId }, "directory change from another node not read");
      return;
    }
    // Gone or disabled again since: the later message says so.
    if (!row || row.disabled || this.#closed) return;
    if (message.kind === "added") this.#presence.userAdded(row);
    else this.#presence.userUpdated(row);
  }
}
