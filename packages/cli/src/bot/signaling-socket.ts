import WebSocket from "ws";
import type { ServerAddress } from "../server-address.js";

/** How the bot trusts a `wss://` server: Node's default CAs, plus `ca` if given; none with `insecure`. */
export interface ServerTrust {
  /** PEM certificates to trust besides Node's default CAs (e.g. a `--self-signed` server's tls-cert.pem). */
  ca?: string;
  /** Skip certificate checks altogether. */
  insecure?: boolean;
}

/**
 * Opens the bot's signaling WebSocket. Without `localAddress` the system picks the route and its
 * source address; with it (--bind) the socket leaves from that address. The last socket error is
 * handed to `onError`, so a failed connect can say why (see `connectionFailure`).
 */
export function openSignalingSocket(
  url: string,
  options: ServerTrust & { localAddress?: string; onError: (error: Error) => void },
): WebSocket {
  const ws = new WebSocket(url, {
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(options.ca ? { ca: options.ca } : {}),
    ...(options.insecure ? { rejectUnauthorized: false } : {}),
  });
  ws.on("error", options.onError);
  return ws;
}

/** OpenSSL's verification failures that carry no "CERT" in their code. */
const VERIFY_CODES = new Set(["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "HOSTNAME_MISMATCH"]);

/** Whether a socket error is the server's certificate failing verification. */
export function isCertificateError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  return code.includes("CERT") || VERIFY_CODES.has(code);
}

/** One line saying why connecting to `server` failed with this socket error, and what to try. */
export function connectionFailure(server: ServerAddress, error: Error): string {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  const start = `cannot connect to ${server.url}`;
  if (isCertificateError(error)) {
    return (
      `${start}: the server's certificate does not verify (${error.message}; ${code}). ` +
      "Trust it with --ca FILE (for a --self-signed server, tls-cert.pem in its data dir), or skip the check with --insecure."
    );
  }
  if (code.startsWith("ERR_SSL_")) {
    return `${start}: the TLS handshake failed (${error.message}; ${code}): does the server serve HTTPS on port ${server.port}? Without TLS, use http:// or ws://.`;
  }
  const response = /^Unexpected server response: (\d+)/.exec(error.message);
  if (response) {
    return `${start}: the server answered HTTP ${response[1]} instead of opening the WebSocket: is this a Parley server, and the path (/ws by default) right?`;
  }
  switch (code) {
    case "ECONNREFUSED":
      return `${start}: connection refused (ECONNREFUSED): is the server running on port ${server.port}?`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `${start}: host ${server.host} not found (${code})`;
    case "ECONNRESET":
      return `${start}: the connection was reset (ECONNRESET): does the server serve HTTPS (then use https:// or wss://)?`;
    default:
      return `${start}: ${error.message}${code && !error.message.includes(code) ? ` (${code})` : ""}`;
  }
}
