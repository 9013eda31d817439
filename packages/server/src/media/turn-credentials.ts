import { createHmac } from "node:crypto";
import type { IceServer } from "@parley/protocol";

/**
 * Relay (TURN) servers handed to clients whose network blocks UDP, with credentials in coturn's
 * REST-API scheme (`use-auth-secret`): username `expiry:userId`, password the base64 HMAC-SHA1 of
 * the username under the secret shared with coturn. coturn checks them on its own; Parley never
 * talks to it.
 */
export interface TurnConfig {
  /** `turn:` / `turns:` URLs, e.g. `turns:parley.example:5349?transport=tcp`. */
  urls: string[];
  /** coturn's `static-auth-secret`. */
  secret: string;
  /** How long handed-out credentials stay valid. coturn refuses an allocation's refresh after it. */
  ttlSeconds: number;
}

export const DEFAULT_TURN_TTL_SECONDS = 86_400;

/** Shortest shared secret accepted: it signs every credential. */
export const TURN_SECRET_MIN = 16;

const TURN_URL = /^turns?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}))?(\?transport=(udp|tcp))?$/;

/** Why `url` is not a usable TURN URL (RFC 7065), or undefined when it is. */
export function turnUrlProblem(url: string): string | undefined {
  const match = TURN_URL.exec(url);
  if (!match) return "expected turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT][?transport=tcp]";
  const port = match[3] === undefined ? undefined : Number(match[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return "the port must be from 1 to 65535";
  if (url.startsWith("turns:") && match[5] === "udp") return "turns: runs over TLS, so its transport is tcp";
  return undefined;
}

/** Credentials for `userId`, valid `ttlSeconds` from `nowMs`. */
export function turnIceServers(config: TurnConfig, userId: number, nowMs = Date.now()): IceServer[] {
  if (config.urls.length === 0) return [];
  const expiry = Math.floor(nowMs / 1000) + config.ttlSeconds;
  const username = `${expiry}:${userId}`;
  const credential = createHmac("sha1", config.secret).update(username).digest("base64");
  return [{ urls: [...config.urls], username, credential }];
}
