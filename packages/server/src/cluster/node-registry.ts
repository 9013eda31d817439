import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { TypedEmitter } from "../util/typed-emitter.js";

/** What a node carries at the moment of its heartbeat. */
export interface NodeLoad {
  /** Users with at least one device logged in on the node. */
  users: number;
  /** Live calls whose state machine the node owns. */
  calls: number;
  /** Media legs open on the node's relay. */
  legs: number;
}

/** A node of the cluster, as its last heartbeat described it. */
export interface NodeInfo {
  /** Random per start of the server process. */
  id: string;
  /** The address the node's media relay advertises to clients (`--media-ip`). */
  mediaAddress: string;
  startedAt: string;
  heartbeatAt: string;
  load: NodeLoad;
}

/** How often a node writes its heartbeat. */
export const HEARTBEAT_MS = 2_000;
/** How often a node reads the others' records. */
export const CHECK_MS = 1_000;
/**
 * A node's record expires this long after its last heartbeat. The others check every CHECK_MS, so
 * a node that stops is declared dead at most NODE_TTL_MS + CHECK_MS (7 s) after its last heartbeat,
 * which is at most that long after it stopped: within 10 s. Two missed heartbeats are tolerated
 * (a busy event loop, a slow Redis).
 */
export const NODE_TTL_MS = 6_000;

/** The set of node ids that joined and have not been declared dead. */
export const NODES_KEY = "parley:nodes";
/** A node's record (NodeInfo as JSON), expiring NODE_TTL_MS after its last heartbeat. */
export const nodeKey = (id: string) => `parley:node:${id}`;

/**
 * The node registry: this node's heartbeat in Redis (every HEARTBEAT_MS, with its load and a TTL)
 * and the live nodes as the last check (every CHECK_MS) saw them. A node whose record expired is declared dead by
 * whichever node sees it first (removed from the set) and `nodeDown` is emitted on every node that
 * knew it; a node seen for the first time emits `nodeUp`.
 *
 * After this node's connection to Redis comes back (`reconnected`), deaths are not declared for one
 * TTL: a restarted Redis holds no records until every node has written its next heartbeat.
 */
export class NodeRegistry extends TypedEmitter<{ nodeUp: [NodeInfo]; nodeDown: [string]; reconnected: [] }> {
  readonly self: { id: string; mediaAddress: string; startedAt: string };
  readonly #redis: Redis;
  readonly #load: () => NodeLoad;
  readonly #logger: Logger;
  readonly #live = new Map<string, NodeInfo>();
  #timer: NodeJS.Timeout | undefined;
  #lastBeat = 0;
  #lastBeatStarted = 0;
  #graceUntil = 0;
  #ticking = false;
  #closed = false;
  #connectedOnce = false;

  constructor(deps: {
    redis: Redis;
    id: string;
    mediaAddress: string;
    load: () => NodeLoad;
    logger: Logger;
  }) {
    super(deps.logger);
    this.self = { id: deps.id, mediaAddress: deps.mediaAddress, startedAt: new Date().toISOString() };
    this.#redis = deps.redis;
    this.#load = deps.load;
    this.#logger = deps.logger;
    this.#redis.on("ready", () => {
      if (!this.#connectedOnce || this.#closed) return;
      this.#logger.info("Redis reachable again: heartbeat resumed");
      this.#graceUntil = Date.now() + NODE_TTL_MS;
      this.#lastBeatStarted = 0;
      void this.#tick().then(() => this.emit("reconnected"));
    });
  }

  /** Writes the first heartbeat (throws when Redis refuses) and starts the periodic ones. */
  async start(): Promise<void> {
    this.#connectedOnce = true;
    await this.#beat();
    await this.#check();
    this.#timer = setInterval(() => void this.#tick(), CHECK_MS);
    this.#timer.unref();
  }

  /**
   * Whether this node is in the cluster right now: connected to Redis with a heartbeat the others
   * still see. While not, it takes no logins (CLUSTER_UNAVAILABLE).
   */
  get available(): boolean {
    return !this.#closed && this.#redis.status === "ready" && Date.now() - this.#lastBeat < NODE_TTL_MS;
  }

  /** The live nodes, this one first, as of the last heartbeat and check. */
  liveNodes(): NodeInfo[] {
    return [this.#info(), ...this.#live.values()];
  }

  /** Whether `id` is a live node (this one included). */
  isLive(id: string): boolean {
    return id === this.self.id || this.#live.has(id);
  }

  /** Leaves the cluster: the record is removed at once, so the others see this node gone. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#redis.status !== "ready") return;
    await this.#redis
      .multi()
      .del(nodeKey(this.self.id))
      .srem(NODES_KEY, this.self.id)
      .exec()
      .catch(() => undefined);
  }

  #info(): NodeInfo {
    return { ...this.self, heartbeatAt: new Date(this.#lastBeat).toISOString(), load: this.#load() };
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#closed) return;
    this.#ticking = true;
    try {
      // Half a check early: a late timer must not stretch the heartbeat to the next tick.
      if (Date.now() - this.#lastBeatStarted >= HEARTBEAT_MS - CHECK_MS / 2) await this.#beat();
      await this.#check();
    } catch (error) {
      this.#logger.debug({ err: error }, "heartbeat or node check failed");
    } finally {
      this.#ticking = false;
    }
  }

  async #beat(): Promise<void> {
    const now = Date.now();
    this.#lastBeatStarted = now;
    const info: NodeInfo = { ...this.self, heartbeatAt: new Date(now).toISOString(), load: this.#load() };
    await this.#redis
      .multi()
      .set(nodeKey(this.self.id), JSON.stringify(info), "PX", NODE_TTL_MS)
      .sadd(NODES_KEY, this.self.id)
      .exec();
    this.#lastBeat = now;
  }

  async #check(): Promise<void> {
    const ids = (await this.#redis.smembers(NODES_KEY)).filter((id) => id !== this.self.id);
    const records = ids.length > 0 ? await this.#redis.mget(ids.map(nodeKey)) : [];
    const seen = new Set<string>();
    const mayDeclare = Date.now() >= this.#graceUntil;
    for (const [index, id] of ids.entries()) {
      const record = records[index];
      if (record) {
        seen.add(id);
        const info = JSON.parse(record) as NodeInfo;
        const known = this.#live.has(id);
        this.#live.set(id, info);
        if (!known) {
          this.#logger.info({ node: id, mediaAddress: info.mediaAddress }, "node joined the cluster");
          this.emit("nodeUp", info);
        }
      } else if (mayDeclare) {
        // Expired: dead. Whoever sees it first removes it from the set; the others' SREM is a no-op.
        await this.#redis.srem(NODES_KEY, id);
        this.#declareDead(id);
      }
    }
    for (const id of this.#live.keys()) {
      if (!seen.has(id) && mayDeclare) this.#declareDead(id);
    }
  }

  #declareDead(id: string): void {
    this.#live.delete(id);
    this.#logger.warn({ node: id }, "node declared dead: no heartbeat");
    this.emit("nodeDown", id);
  }
}
