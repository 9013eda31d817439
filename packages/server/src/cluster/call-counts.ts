import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { NodeRegistry } from "./node-registry.js";

/** The calls each user takes part in on a node (the calls it owns): a hash of user id -> count. */
export const callCountsKey = (node: string) => `parley:calls:${node}`;

const NONE: ReadonlyMap<number, number> = new Map();

/**
 * `--max-calls-per-user` across the nodes of a cluster (docs/scaling.md, "Calls across nodes").
 * Each node writes, for every user in a call it owns (ringing, talking, held, reconnecting), how
 * many such calls there are, into its own hash in Redis as the count changes; a node about to place
 * or grow a call reads the other live nodes' counts of the users concerned (one round trip), and
 * adds its own.
 *
 * Not presence: a call's owner counts users who may have no device on it (the callee of a call it
 * placed), presence hashes hold only users with devices on the node, and a count is read when it is
 * needed rather than from a copy coalesced and relayed to every node. A dead node's hash is deleted;
 * after Redis comes back the hash is rewritten whole (a restarted Redis is empty).
 */
export class ClusterCallCounts {
  readonly #node: string;
  readonly #redis: Redis;
  readonly #registry: NodeRegistry;
  readonly #logger: Logger;
  readonly #local = new Map<number, number>();
  /** A change could not be written: the whole hash is rewritten when the connection is back. */
  #dirty = false;
  #closed = false;

  constructor(deps: { node: string; redis: Redis; registry: NodeRegistry; logger: Logger }) {
    this.#node = deps.node;
    this.#redis = deps.redis;
    this.#registry = deps.registry;
    this.#logger = deps.logger;
    deps.registry.on("nodeDown", (id) => void this.#redis.del(callCountsKey(id)).catch(() => undefined));
    deps.redis.on("ready", () => {
      if (this.#dirty) void this.#rewrite();
    });
  }

  /** Starts with no calls (a hash left by an earlier start with the same id is dropped). */
  async start(): Promise<void> {
    await this.#rewrite();
  }

  /** This node now holds `count` calls with `userId` in them. */
  changed(userId: number, count: number): void {
    if (this.#closed) return;
    if (count > 0) this.#local.set(userId, count);
    else this.#local.delete(userId);
    if (this.#dirty) {
      if (this.#redis.status === "ready") void this.#rewrite();
      return;
    }
    const key = callCountsKey(this.#node);
    const write = count > 0 ? this.#redis.hset(key, String(userId), count) : this.#redis.hdel(key, String(userId));
    write.catch((error: unknown) => {
      this.#dirty = true;
      this.#logger.warn({ err: error, userId }, "call count not shared: Redis unreachable");
    });
  }

  /**
   * The calls these users take part in on the other live nodes. Redis unreachable: none (this node
   * counts its own; a call across nodes fails on its own anyway while Redis is away).
   */
  async elsewhere(userIds: readonly number[]): Promise<ReadonlyMap<number, number>> {
    const nodes = this.#registry.liveNodes().filter((info) => info.id !== this.#node);
    if (nodes.length === 0 || userIds.length === 0) return NONE;
    const fields = userIds.map(String);
    const pipeline = this.#redis.pipeline();
    for (const info of nodes) pipeline.hmget(callCountsKey(info.id), ...fields);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch (error) {
      this.#logger.warn({ err: error }, "call counts of the other nodes not read: Redis unreachable");
      return NONE;
    }
    const counts = new Map<number, number>();
    for (const [error, values] of replies ?? []) {
      if (error || !Array.isArray(values)) continue;
      values.forEach((value, i) => {
        const n = Number(value ?? 0);
        if (n > 0) counts.set(userIds[i]!, (counts.get(userIds[i]!) ?? 0) + n);
      });
    }
    return counts;
  }

  /** Removes this node's hash (a clean stop). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#redis.status !== "ready") return;
    await this.#redis.del(callCountsKey(this.#node)).catch(() => undefined);
  }

  async #rewrite(): Promise<void> {
    if (this.#closed) return;
    this.#dirty = false;
    const key = callCountsKey(this.#node);
    const multi = this.#redis.multi().del(key);
    if (this.#local.size > 0) multi.hset(key, Object.fromEntries(this.#local));
    try {
      await multi.exec();
    } catch (error) {
      this.#dirty = true;
      this.#logger.warn({ err: error }, "call counts not rewritten: Redis unreachable");
    }
  }
}
