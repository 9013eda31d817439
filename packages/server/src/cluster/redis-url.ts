import { redactDatabaseUrl } from "../storage/database-url.js";

/**
 * Checks `--redis`: `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` or `rediss://...` (TLS). Anything
 * else throws, naming the accepted form (the password hidden).
 */
export function parseRedisUrl(value: string): string {
  const text = value.trim();
  if (/^rediss?:\/\//i.test(text)) {
    try {
      new URL(text);
      return text;
    } catch {
      // Named below.
    }
  }
  throw new Error(`--redis must be redis://[USER:PASSWORD@]HOST[:PORT] or rediss://..., not '${redactRedisUrl(text)}'`);
}

/** The URL with its password (if any) replaced by `***`, fit for logs and error messages. */
export function redactRedisUrl(url: string): string {
  return redactDatabaseUrl(url);
}
