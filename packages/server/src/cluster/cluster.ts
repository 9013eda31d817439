import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { PresenceService } from "../presence/presence-service.js";
import { ClusterPresence } from "./cluster-presence.js";
import { type NodeLoad, NodeRegistry } from "./node-registry.js";
import { commandConnection, listeningConnection } from "./redis-connections.js";
import { redactRedisUrl } from "./redis-url.js";

/**
 * This server as one node of a cluster (`--redis`): two connections to Redis (commands, and one in
 * subscriber mode), the node registry (heartbeat, live nodes) and presence across nodes. See
 * docs/scaling.md.
 */
export class Cluster {
  /** Random per start (the server's instance id), logged: how the other nodes and the operator name this one. */
  readonly nodeId: string;
  readonly registry: NodeRegistry;
  readonly presence: ClusterPresence;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #logger: Logger;
  #closed = false;

  private constructor(deps: {
    nodeId: string;
    redis: Redis;
    subscriber: Redis;
    mediaAddress: string;
    load: () => NodeLoad;
    logger: Logger;
  }) {
    this.nodeId = deps.nodeId;
    this.#redis = deps.redis;
    this.#subscriber = deps.subscriber;
    this.#logger = deps.logger;
    this.registry = new NodeRegistry({
      redis: deps.redis,
      id: deps.nodeId,
      mediaAddress: deps.mediaAddress,
      load: deps.load,
      logger: deps.logger,
    });
    this.presence = new ClusterPresence({
      node: deps.nodeId,
      redis: deps.redis,
      subscriber: deps.subscriber,
      registry: this.registry,
      logger: deps.logger,
    });
  }

  /**
   * Connects to Redis, writes the first heartbeat, loads the other nodes' users and hands presence
   * changes both ways. A Redis that cannot be reached stops the start with one line naming it
   * (password hidden) and what it said.
   */
  static async join(options: {
    /** This server's instance id (random per start), also its node id in the call history. */
    nodeId: string;
    url: string;
    mediaAddress: string;
    presence: PresenceService;
    load: () => NodeLoad;
    logger: Logger;
  }): Promise<Cluster> {
    const { url, logger } = options;
    const where = redactRedisUrl(url);
    // Commands fail at once while Redis is away (no offline queue): a login is refused rather
    // than held, and presence is rewritten whole when the connection is back.
    const redis = commandConnection(url);
    const subscriber = listeningConnection(url);
    let lastError = "";
    for (const [name, connection] of [
      ["commands", redis],
      ["subscriber", subscriber],
    ] as const) {
      connection.on("error", (error: Error) => {
        // ioredis reports every failed reconnection attempt: one line per distinct failure.
        if (error.message === lastError) return;
        lastError = error.message;
        logger.warn({ connection: name, redis: where, err: error }, "Redis connection failed");
      });
      connection.on("end", () => logger.debug({ connection: name }, "Redis connection ended"));
    }
    const nodeId = options.nodeId;
    const cluster = new Cluster({
      nodeId,
      redis,
      subscriber,
      mediaAddress: options.mediaAddress,
      load: options.load,
      logger,
    });
    try {
      await redis.connect();
      await subscriber.connect();
      await cluster.registry.start();
      options.presence.setRemote(cluster.presence);
      await cluster.presence.start((userIds) => options.presence.remoteChanged(userIds));
    } catch (error) {
      redis.disconnect();
      subscriber.disconnect();
      // ioredis rejects with "Connection is closed."; the socket's own error says why.
      const reason = lastError || (error as Error).message;
      throw new Error(`Redis at ${where} cannot be reached: ${reason}`, { cause: error });
    }
    lastError = "";
    logger.info({ node: nodeId, mediaAddress: options.mediaAddress, redis: where }, "joined the cluster");
    return cluster;
  }

  /** The connections to Redis (commands; subscriber mode), for the other buses of the node (admin-bus.ts). */
  get connections(): { redis: Redis; subscriber: Redis } {
    return { redis: this.#redis, subscriber: this.#subscriber };
  }

  /** Whether this node can take logins: connected to Redis, its heartbeat current. */
  get available(): boolean {
    return this.registry.available;
  }

  /** Leaves the cluster (users and record removed, so the others see them gone at once), closes Redis. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.presence.close();
    await this.registry.close();
    this.#subscriber.disconnect();
    await this.#redis.quit().catch(() => this.#redis.disconnect());
    this.#logger.info({ node: this.nodeId }, "left the cluster");
  }
}
