import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { MAX_MESSAGE_BYTES, SIGNALING_PATH } from "@parley/protocol";
import { WebSocketServer } from "ws";
import { ClientConnection } from "./client-connection.js";
import type { Services } from "./handlers.js";

/**
 * The WebSocket signaling endpoint: checks the path and Origin at upgrade, caps frames at
 * MAX_MESSAGE_BYTES (larger ones close with 1009), and drops connections that miss a heartbeat.
 */
export class SignalingServer {
  readonly connections = new Set<ClientConnection>();
  readonly #wss: WebSocketServer;
  readonly #services: Services;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(services: Services) {
    this.#services = services;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });
    this.#heartbeat = setInterval(() => {
      for (const conn of this.connections) conn.heartbeat();
    }, services.config.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Handles an HTTP upgrade request for the signaling path; refuses others. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== SIGNALING_PATH) {
      reject(socket, 404, "Not Found");
      return;
    }
    if (!this.#originAllowed(req)) {
      this.#services.logger.warn(
        { origin: req.headers.origin, address: req.socket.remoteAddress },
        "refused WebSocket from foreign origin",
      );
      reject(socket, 403, "Forbidden");
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new ClientConnection(ws, req.socket.remoteAddress ?? "unknown", {
        ...this.#services,
        onConnectionClosed: (closed) => this.connections.delete(closed),
      });
      this.connections.add(conn);
    });
  }

  /** Browsers send Origin: it must be this server's own host, or one the operator allowed. Non-browser clients send none. */
  #originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (this.#services.config.allowedOrigins.includes(origin)) return true;
    try {
      // Compare as URLs so letter case and an explicit default port do not matter.
      const from = new URL(origin);
      return from.host === new URL(`${from.protocol}//${req.headers.host ?? ""}`).host;
    } catch {
      return false;
    }
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const conn of this.connections) conn.close("GOING_AWAY");
    this.#wss.close();
  }
}

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
