import { timingSafeEqual } from "node:crypto";
import type http from "node:http";
import type { MetricsConfig } from "../config.js";
import type { Metrics } from "./metrics.js";

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return v4.startsWith("127.") || address === "::1";
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? "");
  if (!match) return false;
  const given = Buffer.from(match[1]!.trim());
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

function refuse(res: http.ServerResponse, status: number, error: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...extra });
  res.end(JSON.stringify({ error }));
}

/**
 * `GET /metrics` under the configured exposure:
 * - `off`: 404, as if there were no such path;
 * - `local`: only clients on the loopback address; a request carrying a proxy header
 *   (Forwarded, X-Forwarded-For) is refused too, since a reverse proxy on the same host would
 *   otherwise make every outside client look local;
 * - `token`: `Authorization: Bearer TOKEN` required (compared in constant time), from anywhere.
 */
export async function serveMetrics(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  config: MetricsConfig,
  metrics: Metrics,
): Promise<void> {
  if (config.exposure === "off") return refuse(res, 404, "NOT_FOUND");
  if (config.exposure === "local") {
    const proxied = req.headers.forwarded !== undefined || req.headers["x-forwarded-for"] !== undefined;
    if (!isLoopback(req.socket.remoteAddress) || proxied) return refuse(res, 403, "METRICS_LOCAL_ONLY");
  } else if (!config.token || !tokenMatches(req.headers.authorization, config.token)) {
    return refuse(res, 401, "METRICS_TOKEN_REQUIRED", { "www-authenticate": 'Bearer realm="parley-metrics"' });
  }
  const body = await metrics.render();
  res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
  res.end(req.method === "HEAD" ? undefined : body);
}
