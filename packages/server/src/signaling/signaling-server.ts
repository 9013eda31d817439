import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { CloseCode, MAX_MESSAGE_BYTES, SIGNALING_PATH } from "@parley/protocol";
import { type WebSocket, WebSocketServer } from "ws";
import { clientAddressResolver } from "../http/client-address.js";
import { securityHeaderLines } from "../http/security-headers.js";
import type { Services } from "../services.js";
import { AnonymousBudget } from "./anonymous-budget.js";
import { ClientConnection, closeMessage } from "./client-connection.js";
import { ConnectionLimits, type ConnectionRefusal } from "./connection-limits.js";

/** How long a refused connection may take to answer the close frame before its socket is dropped. */
const REFUSED_CLOSE_GRACE_MS = 2000;

/** Seconds a client refused for a full wait line is asked to wait before it tries again. */
const BUSY_RETRY_AFTER_S = 2;

/**
 * The WebSocket signaling endpoint: checks the path and Origin at upgrade, resolves the client
 * address (through trusted proxies), enforces the connection caps, holds new connections to the
 * strangers' budget (AnonymousBudget), caps frames at MAX_MESSAGE_BYTES (larger ones close with
 * 1009), and drops connections that miss a heartbeat.
 */
export class SignalingServer {
  readonly connections = new Set<ClientConnection>();
  readonly #wss: WebSocketServer;
  readonly #services: Services;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #limits: ConnectionLimits;
  readonly #clientAddress: (req: IncomingMessage) => string;
  readonly #budget: AnonymousBudget;

  constructor(services: Services) {
    this.#services = services;
    this.#limits = new ConnectionLimits(services.config.connectionLimits);
    this.#clientAddress = clientAddressResolver(services.config.trustProxy);
    const { anonymousPerSecond } = services.config.connectionLimits;
    // Upgrades wait at most about two seconds of the budget deep; beyond, they are refused.
    this.#budget = new AnonymousBudget({
      perSecond: anonymousPerSecond,
      burst: 2 * anonymousPerSecond,
      maxWaitingUpgrades: 2 * anonymousPerSecond,
    });
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
    const address = this.#clientAddress(req);
    if (!this.#originAllowed(req)) {
      this.#services.logger.warn({ origin: req.headers.origin, address }, "refused WebSocket from foreign origin");
      reject(socket, 403, "Forbidden");
      return;
    }
    const refusal = this.#limits.admit(address);
    if (refusal) {
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#refuse(ws, address, refusal));
      return;
    }
    let admitted = true;
    const release = () => {
      if (!admitted) return;
      admitted = false;
      this.#limits.release(address);
    };
    // Released when the connection closes, or with the socket when the upgrade fails (a bad
    // handshake never reaches the callback).
    socket.once("close", release);
    const accept = () => {
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const services = {
          ...this.#services,
          onConnectionClosed: (closed: ClientConnection) => {
            this.connections.delete(closed);
            release();
          },
        };
        const conn = new ClientConnection(ws, address, services, this.#budget);
        this.connections.add(conn);
      });
    };
    if (this.#budget.tryTake()) {
      accept();
      return;
    }
    if (!this.#budget.upgradeMayWait) {
      this.#services.refusals.refused({ action: "connection_refused", address, reason: "busy" });
      release();
      reject(socket, 503, "Service Unavailable", `Retry-After: ${BUSY_RETRY_AFTER_S}\r\n`);
      return;
    }
    // Past the budget: the upgrade waits its turn, its socket unread; one that closes meanwhile
    // leaves the line (and its connection count) at once.
    socket.on("error", () => {});
    const cancel = this.#budget.wait(() => {
      socket.off("close", cancel);
      if (socket.destroyed) return;
      accept();
    }, true);
    socket.once("close", cancel);
  }

  /**
   * A connection past a cap: opened at the WebSocket level only so that the client (a browser
   * too) sees why, then closed at once with TOO_MANY_CONNECTIONS. No connection state is made.
   */
  #refuse(ws: WebSocket, address: string, reason: ConnectionRefusal): void {
    ws.on("error", () => {});
    this.#services.refusals.refused({ action: "connection_refused", address, reason });
    this.#services.stats.countClose("TOO_MANY_CONNECTIONS");
    ws.send(
      JSON.stringify({
        type: "event",
        event: "session.ended",
        data: { reason: "TOO_MANY_CONNECTIONS", message: closeMessage("TOO_MANY_CONNECTIONS") },
      }),
    );
    ws.close(CloseCode.TOO_MANY_CONNECTIONS, "TOO_MANY_CONNECTIONS");
    const drop = setTimeout(() => ws.terminate(), REFUSED_CLOSE_GRACE_MS);
    drop.unref();
    ws.once("close", () => clearTimeout(drop));
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
    this.#budget.close();
    for (const conn of this.connections) conn.close("GOING_AWAY");
    this.#wss.close();
  }
}

function reject(socket: Duplex, status: number, text: string, extraHeaders = ""): void {
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n${extraHeaders}${securityHeaderLines()}\r\n`,
  );
}
