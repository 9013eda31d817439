import { randomUUID } from "node:crypto";
import { ParleyError } from "@parley/protocol";
import type { Logger } from "pino";
import type { ClusterView } from "../admin/cluster-view.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { Cluster } from "./cluster.js";

/** Operator actions between nodes travel here (Redis pub/sub), addressed to one node each. */
export const ADMIN_CHANNEL = "parley:admin";

/** How long a node waits for another to carry out an action before telling the operator it did not. */
export const ADMIN_TIMEOUT_MS = 3_000;

type AdminMessage =
  /** Close every device of `userId` on node `to` (KICKED). */
  | { type: "kick"; id: string; from: string; to: string; userId: number; actor: string }
  /** The answer: how many devices were closed. */
  | { type: "kicked"; id: string; from: string; to: string; devices: number };

/**
 * The operator's reach across a cluster: the live nodes and where users are online (read from the
 * node registry and cluster presence), and kicks of users connected to another node, sent to that
 * node on ADMIN_CHANNEL and answered with the number of devices it closed. Actions written to the
 * database (disable, reset password) need no bus: every node learns of ended sessions from
 * PostgreSQL (AccountService).
 */
export class AdminBus implements ClusterView {
  readonly nodeId: string;
  readonly #cluster: Cluster;
  readonly #presence: PresenceService;
  readonly #logger: Logger;
  readonly #waiting = new Map<string, (devices: number) => void>();
  readonly #onMessage = (channel: string, message: string) => {
    if (channel === ADMIN_CHANNEL) this.#received(message);
  };
  #closed = false;

  private constructor(deps: { cluster: Cluster; presence: PresenceService; logger: Logger }) {
    this.nodeId = deps.cluster.nodeId;
    this.#cluster = deps.cluster;
    this.#presence = deps.presence;
    this.#logger = deps.logger;
  }

  /** Subscribes to ADMIN_CHANNEL on the cluster's subscriber connection. */
  static async start(deps: { cluster: Cluster; presence: PresenceService; logger: Logger }): Promise<AdminBus> {
    const bus = new AdminBus(deps);
    const { subscriber } = deps.cluster.connections;
    subscriber.on("message", bus.#onMessage);
    await subscriber.subscribe(ADMIN_CHANNEL);
    return bus;
  }

  liveNodes() {
    return this.#cluster.registry.liveNodes();
  }

  nodesOf(userId: number) {
    return this.#cluster.presence.nodesOf(userId);
  }

  remoteUserIds(): Set<number> {
    return this.#cluster.presence.remoteUserIds();
  }

  async kickOn(node: string, userId: number, actor: string): Promise<number> {
    const id = randomUUID();
    const answered = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new ParleyError("NODE_UNREACHABLE", unreachable(node)));
      }, ADMIN_TIMEOUT_MS);
      this.#waiting.set(id, (devices) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(devices);
      });
    });
    const message: AdminMessage = { type: "kick", id, from: this.nodeId, to: node, userId, actor };
    try {
      await this.#cluster.connections.redis.publish(ADMIN_CHANNEL, JSON.stringify(message));
    } catch (error) {
      this.#waiting.get(id)?.(0);
      throw new ParleyError("NODE_UNREACHABLE", unreachable(node), { cause: error });
    }
    return answered;
  }

  /** Unsubscribes; actions still waiting for an answer fail with NODE_UNREACHABLE at their timeout. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const { subscriber } = this.#cluster.connections;
    subscriber.off("message", this.#onMessage);
    if (subscriber.status === "ready") await subscriber.unsubscribe(ADMIN_CHANNEL).catch(() => undefined);
  }

  #received(json: string): void {
    let message: AdminMessage;
    try {
      message = JSON.parse(json) as AdminMessage;
    } catch {
      return;
    }
    if (this.#closed || message.to !== this.nodeId) return;
    if (message.type === "kicked") {
      this.#waiting.get(message.id)?.(message.devices);
      return;
    }
    if (message.type !== "kick") return;
    const devices = this.#presence.devicesOf(message.userId);
    for (const device of devices) device.close("KICKED");
    this.#logger.info(
      { userId: message.userId, devices: devices.length, from: message.from, actor: message.actor },
      "user kicked by an operator on another node",
    );
    const answer: AdminMessage = {
      type: "kicked",
      id: message.id,
      from: this.nodeId,
      to: message.from,
      devices: devices.length,
    };
    this.#cluster.connections.redis.publish(ADMIN_CHANNEL, JSON.stringify(answer)).catch((error: unknown) => {
      this.#logger.warn({ err: error }, "kick not confirmed to the node that asked: Redis unreachable");
    });
  }
}

function unreachable(node: string): string {
  return `Node ${node} did not answer: the user's devices there are still connected; try again, or run the command on that node.`;
}
