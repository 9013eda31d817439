import type { PresenceStatus } from "@parley/protocol";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { NodePresence, RemotePresence } from "../presence/presence-service.js";
import type { NodeRegistry } from "./node-registry.js";

/** Every node publishes its presence changes here. */
export const PRESENCE_CHANNEL = "parley:presence";
/** A node's users: a hash of user id -> NodePresence as JSON (users with no device are absent). */
export const presenceKey = (node: string) => `parley:presence:${node}`;

/** How long local changes are gathered before they go out in one message (a login storm coalesces). */
export const COALESCE_MS = 20;

/** [userId, devices, inCall (0 or 1), status chosen by the user] */
type WireEntry = [number, number, 0 | 1, PresenceStatus];

/** One message on PRESENCE_CHANNEL: a node's changed users, or (`full`) all of them. */
interface PresenceMessage {
  node: string;
  /** Per node, +1 each message: a receiver that sees a gap reloads the node's hash. */
  seq: number;
  full?: true;
  users: WireEntry[];
}

/**
 * Presence across the nodes of a cluster. This node's users are kept in its hash in Redis and their
 * changes published on PRESENCE_CHANNEL, gathered for COALESCE_MS and serialised once per message
 * (a storm of N logins costs N hash fields and a handful of messages, not N x nodes). The other
 * nodes' users are held in memory from their hashes and messages, and every change is handed to
 * presence (`changed`), which announces it to this node's clients as it does its own.
 *
 * When a node is declared dead its users are dropped (and its hash deleted); after this node's
 * connection to Redis comes back, it rewrites its own hash (a restarted Redis is empty) and
 * reloads every other node's.
 */
export class ClusterPresence implements RemotePresence {
  readonly #node: string;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #registry: NodeRegistry;
  readonly #logger: Logger;
  /** Announces users whose presence on other nodes changed (PresenceService.remoteChanged). */
  #changed: (userIds: Iterable<number>) => void = () => undefined;
  /** This node's users as last handed over by presence. */
  readonly #local = new Map<number, NodePresence>();
  readonly #pending = new Set<number>();
  #flushTimer: NodeJS.Timeout | undefined;
  /** Local changes could not be written (Redis away): the whole hash is rewritten on reconnect. */
  #dirty = false;
  #seq = 0;
  readonly #remote = new Map<string, Map<number, NodePresence>>();
  readonly #remoteSeq = new Map<string, number>();
  #closed = false;

  constructor(deps: { node: string; redis: Redis; subscriber: Redis; registry: NodeRegistry; logger: Logger }) {
    this.#node = deps.node;
    this.#redis = deps.redis;
    this.#subscriber = deps.subscriber;
    this.#registry = deps.registry;
    this.#logger = deps.logger;
    this.#subscriber.on("message", (channel: string, message: string) => {
      if (channel === PRESENCE_CHANNEL) this.#received(message);
    });
    this.#registry.on("nodeUp", (info) => void this.#load(info.id));
    this.#registry.on("nodeDown", (id) => this.#dropNode(id));
    this.#registry.on("reconnected", () => void this.#resync());
  }

  /** Subscribes, writes this node's (empty) hash and loads the live nodes' users. */
  async start(changed: (userIds: Iterable<number>) => void): Promise<void> {
    this.#changed = changed;
    await this.#subscriber.subscribe(PRESENCE_CHANNEL);
    await this.#resync();
  }

  // RemotePresence: what the other nodes hold for a user.

  devicesOf(userId: number): number {
    let devices = 0;
    for (const users of this.#remote.values()) devices += users.get(userId)?.devices ?? 0;
    return devices;
  }

  inCall(userId: number): boolean {
    for (const users of this.#remote.values()) if (users.get(userId)?.inCall) return true;
    return false;
  }

  /** Where a user is online: node id -> their presence there (this node included). */
  nodesOf(userId: number): Map<string, NodePresence> {
    const nodes = new Map<string, NodePresence>();
    const here = this.#local.get(userId);
    if (here) nodes.set(this.#node, here);
    for (const [node, users] of this.#remote) {
      const entry = users.get(userId);
      if (entry) nodes.set(node, entry);
    }
    return nodes;
  }

  /** The users online on the other nodes (the operator's list). */
  remoteUserIds(): Set<number> {
    const ids = new Set<number>();
    for (const users of this.#remote.values()) for (const userId of users.keys()) ids.add(userId);
    return ids;
  }

  /** Presence on this node changed for a user: written and published with the next batch. */
  localChanged(userId: number, change: Omit<NodePresence, "status"> & { status: PresenceStatus | undefined }): void {
    const status = change.status ?? this.#local.get(userId)?.status ?? "available";
    if (change.devices > 0) this.#local.set(userId, { devices: change.devices, inCall: change.inCall, status });
    else this.#local.delete(userId);
    this.#pending.add(userId);
    this.#flushTimer ??= setTimeout(() => void this.#flush(), COALESCE_MS);
  }

  /** Removes this node's users from Redis (a clean stop: the others see them offline at once). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    if (this.#redis.status !== "ready") return;
    const message: PresenceMessage = { node: this.#node, seq: ++this.#seq, full: true, users: [] };
    await this.#redis
      .multi()
      .del(presenceKey(this.#node))
      .publish(PRESENCE_CHANNEL, JSON.stringify(message))
      .exec()
      .catch(() => undefined);
  }

  async #flush(): Promise<void> {
    this.#flushTimer = undefined;
    if (this.#closed || this.#pending.size === 0) return;
    if (this.#dirty) {
      // An earlier batch was lost: everything is rewritten (now, or when the connection is back).
      this.#pending.clear();
      if (this.#redis.status === "ready") await this.#resync();
      return;
    }
    const users: WireEntry[] = [];
    const multi = this.#redis.multi();
    const key = presenceKey(this.#node);
    for (const userId of this.#pending) {
      const entry = this.#local.get(userId);
      if (entry) {
        multi.hset(key, String(userId), JSON.stringify(entry));
        users.push(toWire(userId, entry));
      } else {
        multi.hdel(key, String(userId));
        users.push([userId, 0, 0, "offline"]);
      }
    }
    this.#pending.clear();
    const message: PresenceMessage = { node: this.#node, seq: ++this.#seq, users };
    multi.publish(PRESENCE_CHANNEL, JSON.stringify(message));
    try {
      await multi.exec();
    } catch (error) {
      this.#dirty = true;
      this.#logger.warn({ err: error, users: users.length }, "presence changes not shared: Redis unreachable");
    }
  }

  /** This node's hash rewritten whole (announced as `full`), every live node's hash reloaded. */
  async #resync(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#dirty = false;
      this.#pending.clear();
      const key = presenceKey(this.#node);
      const users = [...this.#local].map(([userId, entry]) => toWire(userId, entry));
      const multi = this.#redis.multi().del(key);
      if (this.#local.size > 0) {
        multi.hset(key, Object.fromEntries([...this.#local].map(([userId, entry]) => [userId, JSON.stringify(entry)])));
      }
      const message: PresenceMessage = { node: this.#node, seq: ++this.#seq, full: true, users };
      await multi.publish(PRESENCE_CHANNEL, JSON.stringify(message)).exec();
      for (const info of this.#registry.liveNodes()) if (info.id !== this.#node) await this.#load(info.id);
    } catch (error) {
      this.#dirty = true;
      this.#logger.warn({ err: error }, "presence not resynchronised: Redis unreachable");
    }
  }

  /** Replaces what is held of a node's users by its hash. */
  async #load(node: string): Promise<void> {
    if (node === this.#node) return;
    let hash: Record<string, string>;
    try {
      hash = await this.#redis.hgetall(presenceKey(node));
    } catch (error) {
      this.#logger.debug({ err: error, node }, "presence of a node not loaded");
      return;
    }
    if (!this.#registry.isLive(node)) return;
    const users = new Map<number, NodePresence>();
    for (const [userId, json] of Object.entries(hash)) users.set(Number(userId), JSON.parse(json) as NodePresence);
    this.#replace(node, users);
    this.#remoteSeq.delete(node);
  }

  #dropNode(node: string): void {
    this.#remoteSeq.delete(node);
    if (this.#remote.has(node)) this.#replace(node, undefined);
    this.#redis.del(presenceKey(node)).catch(() => undefined);
  }

  #replace(node: string, users: Map<number, NodePresence> | undefined): void {
    const before = this.#remote.get(node);
    if (users) this.#remote.set(node, users);
    else this.#remote.delete(node);
    const changed = new Set<number>([...(before?.keys() ?? []), ...(users?.keys() ?? [])]);
    if (changed.size > 0) this.#changed(changed);
  }

  #received(json: string): void {
    let message: PresenceMessage;
    try {
      message = JSON.parse(json) as PresenceMessage;
    } catch {
      return;
    }
    const { node } = message;
    // A node not (or no longer) live: its users are loaded from its hash when the registry sees it.
    if (node === this.#node || this.#closed || !this.#registry.isLive(node)) return;
    const last = this.#remoteSeq.get(node);
    this.#remoteSeq.set(node, message.seq);
    if (message.full) {
      const users = new Map<number, NodePresence>();
      for (const wire of message.users) users.set(wire[0], fromWire(wire));
      this.#replace(node, users);
      return;
    }
    if (last !== undefined && message.seq !== last + 1) {
      // A message was missed: the hash, written before each message, is the truth.
      this.#logger.debug({ node, expected: last + 1, got: message.seq }, "presence message missed: reloading the node");
      void this.#load(node);
      return;
    }
    let users = this.#remote.get(node);
    if (!users) {
      users = new Map();
      this.#remote.set(node, users);
    }
    const changed: number[] = [];
    for (const wire of message.users) {
      const entry = fromWire(wire);
      if (entry.devices > 0) users.set(wire[0], entry);
      else users.delete(wire[0]);
      changed.push(wire[0]);
    }
    this.#changed(changed);
  }
}

function toWire(userId: number, entry: NodePresence): WireEntry {
  return [userId, entry.devices, entry.inCall ? 1 : 0, entry.status];
}

function fromWire(wire: WireEntry): NodePresence {
  return { devices: wire[1], inCall: wire[2] === 1, status: wire[3] };
}
