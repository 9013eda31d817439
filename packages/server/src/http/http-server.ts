import http from "node:http";
import https from "node:https";
import { applySecurityHeaders } from "./security-headers.js";
import { serveStatic } from "./static-files.js";

/**
 * A connection must send its request headers (a WebSocket upgrade's included) within 10 s, and its
 * whole request within 30 s: idle sockets from strangers hold file descriptors (Node's default
 * header timeout is 60 s).
 */
export const HTTP_TIMEOUTS = { headersTimeout: 10_000, requestTimeout: 30_000 } as const;

export interface HealthInfo {
  status: "ok";
  version: string;
  uptimeSeconds: number;
  connections: number;
}

/**
 * The one HTTP port: health check, metrics and the web client; WebSocket upgrades are handed over.
 * Every response carries the security headers (security-headers.ts), set before any route runs.
 */
export function createHttpServer(options: {
  health: () => HealthInfo;
  webRoot?: string | undefined;
  /** Serves `GET /metrics` (exposure rules included). */
  metrics?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
  /** PEM certificate (chain allowed) and key: the port serves HTTPS (and WSS) instead of HTTP. */
  tls?: { cert: string; key: string } | undefined;
}): http.Server | https.Server {
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    applySecurityHeaders(res);
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/metrics" && options.metrics && (req.method === "GET" || req.method === "HEAD")) {
      options.metrics(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "INTERNAL_ERROR" }));
      });
      return;
    }
    if (url.pathname === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      const body = JSON.stringify(options.health());
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (options.webRoot && serveStatic(options.webRoot, req, res, url.pathname)) return;
    if (url.pathname === "/" && req.method === "GET") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(
        "Parley server (the web client is not built: run npm run build). Signaling at /ws, health at /healthz.\n",
      );
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "NOT_FOUND" }));
  };
  return options.tls
    ? https.createServer({ ...HTTP_TIMEOUTS, cert: options.tls.cert, key: options.tls.key }, handle)
    : http.createServer(HTTP_TIMEOUTS, handle);
}
