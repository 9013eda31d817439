import { ParleyError } from "@parley/protocol";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { CountedEvent, LimitedKey, LoginCounts } from "../accounts/login-counts.js";

/** Every key of the login counts starts with it: `parley:login:p:<user>|<address>`, `...:a:<address>`, ... */
export const LOGIN_KEY_PREFIX = "parley:login:";

/** A count not answered in this time refuses the login (CLUSTER_UNAVAILABLE): no login waits on a stuck Redis. */
export const LOGIN_COUNTS_TIMEOUT_MS = 2_000;

/**
 * The check of the limits and the count, in one step on Redis (scripts run alone), so attempts on
 * different nodes at the same moment cannot slip past a limit. Each key is a sorted set of events
 * (member: the attempt's id, score: when): the same sliding window as in memory. KEYS: the limited
 * keys, then the counted ones; ARGV: now, window (ms), number of limited keys, member, then the
 * limit of each limited key. Returns each key's count before the event, or nil when refused.
 */
const TAKE = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limited = tonumber(ARGV[3])
local counts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
  if i <= limited and counts[i] >= tonumber(ARGV[4 + i]) then return false end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
end
return counts
`;

/**
 * The login limiter's counts shared by the nodes of a cluster, in Redis (see LoginLimiter and
 * docs/scaling.md): one sorted set per key, expiring with the window once its newest attempt is
 * out of it. A Redis restart (no persistence) forgives, as a restart does on one server.
 */
export class SharedLoginCounts implements LoginCounts {
  readonly #redis: Redis;
  readonly #windowMs: number;
  readonly #logger: Logger;
  readonly #timeoutMs: number;

  constructor(deps: { redis: Redis; windowMs: number; logger: Logger; timeoutMs?: number }) {
    this.#redis = deps.redis;
    this.#windowMs = deps.windowMs;
    this.#logger = deps.logger;
    this.#timeoutMs = deps.timeoutMs ?? LOGIN_COUNTS_TIMEOUT_MS;
  }

  async take(
    limited: readonly LimitedKey[],
    counted: readonly string[],
    event: CountedEvent,
  ): Promise<number[] | undefined> {
    const keys = [...limited.map(({ key }) => key), ...counted].map((key) => LOGIN_KEY_PREFIX + key);
    const args = [event.at, this.#windowMs, limited.length, member(event), ...limited.map(({ limit }) => limit)];
    let counts: unknown;
    try {
      counts = await this.#within(this.#redis.eval(TAKE, keys.length, ...keys, ...args));
    } catch (error) {
      this.#logger.warn({ err: error }, "login counts not reached in Redis: login refused");
      throw new ParleyError("CLUSTER_UNAVAILABLE", undefined, { cause: error });
    }
    return Array.isArray(counts) ? counts.map(Number) : undefined;
  }

  async release(event: CountedEvent, keys: { remove: readonly string[]; clear: readonly string[] }): Promise<void> {
    const batch = this.#redis.multi();
    for (const key of keys.remove) batch.zrem(LOGIN_KEY_PREFIX + key, member(event));
    if (keys.clear.length > 0) batch.del(...keys.clear.map((key) => LOGIN_KEY_PREFIX + key));
    try {
      await this.#within(batch.exec());
    } catch (error) {
      // The attempt stays counted until it ages out of the window: on the safe side.
      this.#logger.warn({ err: error }, "a login attempt could not be taken back in Redis");
    }
  }

  close(): void {}

  /** `promise`, or a rejection once `timeoutMs` passed without an answer. */
  #within<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer in ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}

/** The attempt's member in each sorted set: unique across nodes, ordered by time when read. */
function member(event: CountedEvent): string {
  return `${event.at}:${event.id}`;
}
