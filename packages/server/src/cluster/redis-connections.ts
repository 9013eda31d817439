import { Redis, type RedisOptions } from "ioredis";

/** A connection to Redis not made in this time fails (the start, or one reconnection attempt). */
const CONNECT_TIMEOUT_MS = 3_000;

/** Reconnection delays after Redis went away: quick at first, then once a second. */
const retryStrategy = (attempt: number) => Math.min(100 * attempt, 1_000);

/**
 * A connection for commands, not yet connected (`connect()`): no offline queue, so a command that
 * cannot go while Redis is away fails at once instead of waiting; it reconnects by itself.
 * `options` adds to these (e.g. a `commandTimeout`).
 */
export function commandConnection(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy,
    ...options,
  });
}

/**
 * A connection that waits on Redis (a subscriber, a blocking read), not yet connected: what it
 * asks while Redis is away waits for the reconnection.
 */
export function listeningConnection(url: string): Redis {
  return new Redis(url, { lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, retryStrategy });
}
