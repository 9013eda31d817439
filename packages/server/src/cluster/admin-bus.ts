import { randomUUID } from "node:crypto";
import { isErrorCode, type OperatorCall, ParleyError, type WireError } from "@parley/protocol";
import type { Logger } from "pino";
import type { ClusterView, EndedCall, LocalCalls, RemoteCalls } from "../admin/cluster-view.js";
import { auditOrigin } from "../audit/audit-log.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { Cluster } from "./cluster.js";

/** Operator actions between nodes travel here (Redis pub/sub), addressed to one node each. */
export const ADMIN_CHANNEL = "parley:admin";

/** How long a node waits for another to carry out an action before telling the operator it did not. */
export const ADMIN_TIMEOUT_MS = 3_000;

/**
 * How long the operator's call list waits for each other node's calls: shorter than an action's
 * wait, since the `/admin` page asks every second and a frozen node would slow every refresh until
 * it is declared dead (within 10 s).
 */
export const CALLS_TIMEOUT_MS = 2_000;

/** A request to node `to`, answered on the same channel with the same `id`. */
type AdminRequest =
  /** Close every device of `userId` on node `to` (KICKED). */
  | { type: "kick"; userId: number; actor: string }
  /** List node `to`'s live calls. */
  | { type: "calls" }
  /** End one of node `to`'s calls (reason `operator`); `address`: the web operator's, for the audit log. */
  | { type: "hangup"; callId: string; actor: string; address?: string };

type AdminReply =
  /** How many devices were closed. */
  | { type: "kicked"; devices: number }
  | { type: "callList"; calls: OperatorCall[] }
  | { type: "hungUp"; call: EndedCall }
  /** The request failed there (e.g. CALL_NOT_FOUND). */
  | { type: "failed"; error: WireError };

type AdminMessage = { id: string; from: string; to: string } & (AdminRequest | AdminReply);

/**
 * The operator's reach across a cluster: the live nodes and where users are online (read from the
 * node registry and cluster presence); kicks of users connected to another node, the other nodes'
 * live calls and hang-ups of calls another node owns, each a request sent to one node on
 * ADMIN_CHANNEL and answered there. Actions written to the database (disable, reset password) need
 * no bus: every node learns of ended sessions from PostgreSQL (AccountService).
 */
export class AdminBus implements ClusterView {
  readonly nodeId: string;
  readonly #cluster: Cluster;
  readonly #presence: PresenceService;
  readonly #logger: Logger;
  readonly #waiting = new Map<string, (reply: AdminReply) => void>();
  readonly #onMessage = (channel: string, message: string) => {
    if (channel === ADMIN_CHANNEL) this.#received(message);
  };
  #local: LocalCalls | undefined;
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

  serveCalls(local: LocalCalls): void {
    this.#local = local;
  }

  async kickOn(node: string, userId: number, actor: string): Promise<number> {
    const reply = await this.#ask(node, { type: "kick", userId, actor }, ADMIN_TIMEOUT_MS, kickUnreachable(node));
    return reply.type === "kicked" ? reply.devices : 0;
  }

  async remoteCalls(): Promise<RemoteCalls> {
    const others = this.liveNodes()
      .map((node) => node.id)
      .filter((id) => id !== this.nodeId);
    const replies = await Promise.allSettled(
      others.map((node) => this.#ask(node, { type: "calls" }, CALLS_TIMEOUT_MS, callsUnreachable(node))),
    );
    const result: RemoteCalls = { calls: [], unanswered: [] };
    for (const [index, reply] of replies.entries()) {
      const node = others[index]!;
      if (reply.status === "fulfilled" && reply.value.type === "callList") {
        for (const call of reply.value.calls) result.calls.push({ ...call, node });
      } else {
        result.unanswered.push(node);
      }
    }
    return result;
  }

  async endCallOn(node: string, idOrPrefix: string, actor: string): Promise<EndedCall> {
    const address = auditOrigin.getStore()?.address;
    const reply = await this.#ask(
      node,
      { type: "hangup", callId: idOrPrefix, actor, ...(address ? { address } : {}) },
      ADMIN_TIMEOUT_MS,
      hangupUnreachable(node),
    );
    if (reply.type === "hungUp") return reply.call;
    throw new ParleyError("INTERNAL_ERROR");
  }

  /** Unsubscribes; requests still waiting for an answer fail with NODE_UNREACHABLE at their timeout. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const { subscriber } = this.#cluster.connections;
    subscriber.off("message", this.#onMessage);
    if (subscriber.status === "ready") await subscriber.unsubscribe(ADMIN_CHANNEL).catch(() => undefined);
  }

  /**
   * Sends `request` to `node` and resolves with its reply; rejects with NODE_UNREACHABLE (saying
   * `unreachable`) when none comes within `timeoutMs` or Redis refuses it, with the node's own
   * error when it failed there.
   */
  async #ask(node: string, request: AdminRequest, timeoutMs: number, unreachable: string): Promise<AdminReply> {
    const id = randomUUID();
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<AdminReply>((resolve, reject) => {
      timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new ParleyError("NODE_UNREACHABLE", unreachable));
      }, timeoutMs);
      this.#waiting.set(id, (reply) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        if (reply.type !== "failed") resolve(reply);
        else
          reject(
            new ParleyError(isErrorCode(reply.error.code) ? reply.error.code : "INTERNAL_ERROR", reply.error.message),
          );
      });
    });
    const message: AdminMessage = { ...request, id, from: this.nodeId, to: node };
    try {
      await this.#cluster.connections.redis.publish(ADMIN_CHANNEL, JSON.stringify(message));
    } catch (error) {
      clearTimeout(timer);
      this.#waiting.delete(id);
      throw new ParleyError("NODE_UNREACHABLE", unreachable, { cause: error });
    }
    return answered;
  }

  #received(json: string): void {
    let message: AdminMessage;
    try {
      message = JSON.parse(json) as AdminMessage;
    } catch {
      return;
    }
    if (this.#closed || message.to !== this.nodeId) return;
    switch (message.type) {
      case "kicked":
      case "callList":
      case "hungUp":
      case "failed":
        this.#waiting.get(message.id)?.(message);
        return;
      case "kick":
        this.#reply(message, () => this.#kick(message));
        return;
      case "calls":
        this.#reply(message, () => this.#calls());
        return;
      case "hangup":
        this.#reply(message, () => this.#hangup(message));
        return;
    }
  }

  #kick(message: AdminMessage & { type: "kick" }): AdminReply {
    const devices = this.#presence.devicesOf(message.userId);
    for (const device of devices) device.close("KICKED");
    this.#logger.info(
      { userId: message.userId, devices: devices.length, from: message.from, actor: message.actor },
      "user kicked by an operator on another node",
    );
    return { type: "kicked", devices: devices.length };
  }

  async #calls(): Promise<AdminReply> {
    return { type: "callList", calls: (await this.#local?.calls()) ?? [] };
  }

  #hangup(message: AdminMessage & { type: "hangup" }): AdminReply {
    if (!this.#local) throw new ParleyError("CALL_NOT_FOUND");
    const { endCall } = this.#local;
    const call =
      message.address === undefined
        ? endCall(message.callId, message.actor)
        : auditOrigin.run({ address: message.address }, () => endCall(message.callId, message.actor));
    this.#logger.info(
      { callId: call.callId, from: message.from, actor: message.actor },
      "call ended by an operator on another node",
    );
    return { type: "hungUp", call };
  }

  /** Answers `request` with what it gave (or the error it threw), on ADMIN_CHANNEL to the node that asked. */
  #reply(request: AdminMessage, carryOut: () => AdminReply | Promise<AdminReply>): void {
    void Promise.resolve()
      .then(carryOut)
      .catch((error: unknown): AdminReply => {
        if (error instanceof ParleyError) return { type: "failed", error: error.toWire() };
        this.#logger.error({ err: error, request: request.type }, "operator request from another node failed");
        return { type: "failed", error: new ParleyError("INTERNAL_ERROR").toWire() };
      })
      .then((reply) => {
        const answer: AdminMessage = { ...reply, id: request.id, from: this.nodeId, to: request.from };
        return this.#cluster.connections.redis.publish(ADMIN_CHANNEL, JSON.stringify(answer));
      })
      .catch((error: unknown) => {
        this.#logger.warn({ err: error, request: request.type }, "operator request not answered: Redis unreachable");
      });
  }
}

function kickUnreachable(node: string): string {
  return `Node ${node} did not answer: the user's devices there are still connected; try again, or run the command on that node.`;
}

function callsUnreachable(node: string): string {
  return `Node ${node} did not send its calls in time.`;
}

function hangupUnreachable(node: string): string {
  return `Node ${node}, which holds the call, did not answer: the call may still be going on; try again, or run the command on that node.`;
}
