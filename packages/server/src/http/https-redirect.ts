import http from "node:http";
import type { AddressInfo } from "node:net";
import { HTTP_TIMEOUTS } from "./http-server.js";
import { applySecurityHeaders } from "./security-headers.js";

/**
 * Plain HTTP that sends every request to the same host and path over HTTPS (308, so the method
 * and body are kept), for people who type the server's address without `https://`. Nothing else
 * is served on it: no page, no WebSocket.
 */
export async function listenHttpsRedirect(options: {
  host: string;
  port: number;
  /** The HTTPS port requests are sent to. */
  httpsPort: number;
}): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(HTTP_TIMEOUTS, (req, res) => {
    applySecurityHeaders(res);
    const hostname = hostnameOf(req.headers.host) ?? fallbackHost(options.host);
    const target = `https://${hostname}${options.httpsPort === 443 ? "" : `:${options.httpsPort}`}${req.url ?? "/"}`;
    res.writeHead(308, { location: target, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : `Parley is served over HTTPS: ${target}\n`);
  });
  server.on("upgrade", (_req, socket) => socket.end("HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\n\r\n"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** The host name of a Host header (without its port), or undefined when it is missing or not a plain name or address. */
function hostnameOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.exec(header.trim());
  return match?.[1];
}

/** The listening address as a host to name, when the request named none: a wildcard means this machine. */
function fallbackHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "localhost";
  return host.includes(":") ? `[${host}]` : host;
}
