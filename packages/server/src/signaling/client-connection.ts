import {
  ANONYMOUS_REQUESTS,
  CloseCode,
  type CloseReason,
  type ErrorCode,
  type EventData,
  type EventName,
  isErrorCode,
  isRequestType,
  ParleyError,
  Requests,
  type RequestType,
} from "@parley/protocol";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import type { Device } from "../presence/presence-service.js";
import type { Services } from "../services.js";
import type { AnonymousBudget } from "./anonymous-budget.js";
import type { Connection, Identity } from "./connection.js";
import { type ConnectionState, canTransition } from "./connection-state.js";
import { HANDLERS } from "./handlers.js";
import { TokenBucket } from "./rate-limiter.js";

const CLOSE_MESSAGES: Partial<Record<CloseReason, string>> = {
  KICKED: "An operator disconnected you.",
  ACCOUNT_DISABLED: "This account was disabled by an operator.",
  SESSION_REVOKED: "This session was ended (logged out elsewhere, password changed or account deleted).",
  FLOODING: "Too many messages.",
  GOING_AWAY: "The server is shutting down.",
  PROTOCOL_VERSION_UNSUPPORTED: "Unsupported protocol version.",
  HELLO_TIMEOUT: "No hello received in time.",
  TOO_MANY_CONNECTIONS: "Too many connections to this server (in all, or from your address); try again later.",
  LOGIN_TIMEOUT: "No login in time.",
  SESSION_EXPIRED: "Your session expired; log in again.",
};

/** The `session.ended` text of a close reason. */
export function closeMessage(reason: CloseReason): string {
  return CLOSE_MESSAGES[reason] ?? reason;
}

const LOGIN_REQUESTS: readonly RequestType[] = ["auth.register", "auth.login", "auth.resume"];

let nextConnectionId = 1;

/** The request id of a refused message, if it has a readable one, so the client can match the refusal. */
function requestIdOf(data: RawData): string | null {
  try {
    const { requestId } = JSON.parse(data.toString()) as { requestId?: unknown };
    return typeof requestId === "string" && requestId.length > 0 && requestId.length <= 64 ? requestId : null;
  } catch {
    return null;
  }
}

/** The handlers' services, and the signaling server's hook for a connection that has closed. */
export interface ConnectionServices extends Services {
  onConnectionClosed(conn: ClientConnection): void;
}

/**
 * One WebSocket signaling connection: validates every message at the edge, enforces the
 * connection's state and rate limit, runs requests one at a time in arrival order and
 * replies to each with `ok` or a typed error. Until it logs in, each message first takes a
 * token of the server-wide strangers' budget; without one, the socket is paused (left unread)
 * and the message waits its turn.
 */
export class ClientConnection implements Connection {
  readonly id = nextConnectionId++;
  readonly address: string;
  readonly connectedAt = new Date();
  #state: ConnectionState = "greeting";
  #identity: Identity | undefined;
  #queue: Promise<void> = Promise.resolve();
  readonly #ws: WebSocket;
  readonly #services: ConnectionServices;
  readonly #logger: Logger;
  readonly #bucket: TokenBucket;
  readonly #helloTimer: NodeJS.Timeout;
  /** Runs while the connection is greeted but not logged in (LOGIN_TIMEOUT when it fires). */
  #loginTimer: NodeJS.Timeout | undefined;
  /** A login request (register, login, resume) is being answered: the login deadline waits for it. */
  #loginInFlight = false;
  /** The login deadline passed while a login was being answered: it ends the connection unless that login succeeded. */
  #loginDeadlinePassed = false;
  #alive = true;
  readonly #budget: AnonymousBudget;
  /** Messages read before the socket paused, waiting for budget tokens, in order. */
  readonly #held: { data: RawData; isBinary: boolean }[] = [];
  /** Leaves the budget's line; set while this connection waits in it. */
  #cancelWait: (() => void) | undefined;

  constructor(ws: WebSocket, address: string, services: ConnectionServices, budget: AnonymousBudget) {
    this.#ws = ws;
    this.#budget = budget;
    this.address = address;
    this.#services = services;
    this.#logger = services.logger.child({ conn: this.id });
    this.#bucket = new TokenBucket(services.config.messageRate);
    this.#helloTimer = setTimeout(() => this.close("HELLO_TIMEOUT"), services.config.helloTimeoutMs);
    this.#helloTimer.unref();
    services.stats.connectionsTotal++;
    ws.on("message", (data, isBinary) => this.#onArrival(data, isBinary));
    ws.on("pong", () => {
      this.#alive = true;
    });
    ws.on("close", (code) => this.#onClosed(code));
    ws.on("error", (error) => this.#logger.warn({ err: error }, "websocket error"));
    this.#logger.info({ address }, "connection opened");
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get identity(): Identity | undefined {
    return this.#identity;
  }

  /** Heartbeat: returns false (and terminates) when the previous ping got no pong. */
  heartbeat(): boolean {
    // A connection held by the budget is not read, pongs included: the hello and login deadlines bound it.
    if (this.#cancelWait !== undefined) return true;
    if (!this.#alive) {
      this.#logger.info("no pong: dropping connection");
      this.#ws.terminate();
      return false;
    }
    this.#alive = false;
    this.#ws.ping();
    return true;
  }

  transitionTo(next: ConnectionState): void {
    if (this.#state === next) return;
    if (!canTransition(this.#state, next)) {
      this.#logger.warn({ from: this.#state, to: next }, "ignored invalid connection transition");
      return;
    }
    this.#logger.debug({ from: this.#state, to: next }, "connection state");
    this.#state = next;
  }

  /** Marks the connection logged in and registers it with presence. */
  authenticate(userId: number, sessionId: number, deviceName: string): void {
    // A login that completes after the socket closed (the client left, or the login deadline
    // passed while it ran) registers no device.
    if (this.#state === "closed") return;
    this.#stopLoginDeadline();
    const device: Device = {
      id: this.id,
      userId,
      sessionId,
      deviceName,
      address: this.address,
      connectedAt: new Date(),
      // Only while this device is the connection's logged-in identity (not after a logout).
      push: (event, data) => {
        if (this.#identity?.device === device) this.push(event, data);
      },
      pushFrame: (frame) => {
        if (this.#identity?.device === device && this.#state !== "closed") this.#sendFrame(frame);
      },
      close: (reason, message) => this.close(reason, message),
    };
    this.#identity = { userId, sessionId, deviceName, device };
    this.transitionTo("authenticated");
    this.#logger.info({ userId, sessionId }, "authenticated");
    this.#services.presence.attach(device);
    // Messages that arrived behind the login no longer need the strangers' budget.
    if (this.#cancelWait !== undefined) {
      this.#cancelWait();
      this.#cancelWait = undefined;
      this.#releaseHeld(false);
    }
  }

  /** Back to anonymous after a logout on this device (the socket stays open). */
  deauthenticate(): void {
    const identity = this.#identity;
    if (!identity) return;
    this.#identity = undefined;
    this.transitionTo("anonymous");
    this.#services.presence.detach(identity.device);
    this.#startLoginDeadline();
  }

  /** Events go only to open connections; a closing one has had its `session.ended`. */
  push<E extends EventName>(event: E, data: EventData<E>): void {
    if (this.#state === "closed") return;
    this.#send({ type: "event", event, data });
  }

  /** Idempotent. Tells the client why (`session.ended`), then closes with the reason's code. */
  close(reason: CloseReason, message?: string): void {
    if (this.#state === "closed") return;
    const text = message ?? closeMessage(reason);
    this.#logger.info({ reason }, "closing connection");
    if (reason !== "NORMAL") this.push("session.ended", { reason, message: text });
    this.#services.stats.countClose(reason);
    this.#finish(false);
    this.#ws.close(CloseCode[reason], reason);
  }

  /** `lost`: the connection dropped (not closed on purpose by either side); see PresenceService. */
  #finish(lost: boolean): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#helloTimer);
    this.#cancelWait?.();
    this.#cancelWait = undefined;
    this.#held.length = 0;
    this.#stopLoginDeadline();
    const identity = this.#identity;
    this.#identity = undefined;
    this.transitionTo("closed");
    if (identity) this.#services.presence.detach(identity.device, lost);
    this.#services.onConnectionClosed(this);
  }

  #onClosed(code: number): void {
    this.#logger.info({ code }, "connection closed");
    // A close frame (any code) is the client leaving on purpose: disconnect(), a closed tab. 1006
    // (no close frame: the network went, or the heartbeat terminated it) is a lost connection.
    this.#finish(code === 1006);
  }

  #send(message: unknown): void {
    this.#sendFrame(JSON.stringify(message));
  }

  #sendFrame(frame: string): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#services.stats.messagesOut++;
    this.#ws.send(frame);
  }

  #replyError(requestId: string | null, code: ErrorCode, message?: string): void {
    this.#services.stats.countError(code);
    this.#send({ type: "response", requestId, ok: false, error: new ParleyError(code, message).toWire() });
  }

  /** Logged-in connections go straight through; others spend the strangers' budget, or wait for it. */
  #onArrival(data: RawData, isBinary: boolean): void {
    if (this.#state === "closed") return;
    if (this.#held.length === 0 && (this.#state === "authenticated" || this.#budget.tryTake())) {
      this.#onMessage(data, isBinary);
      return;
    }
    this.#held.push({ data, isBinary });
    this.#waitForBudget();
  }

  #waitForBudget(): void {
    if (this.#cancelWait !== undefined) return;
    if (!this.#ws.isPaused) this.#ws.pause();
    this.#cancelWait = this.#budget.wait(() => {
      this.#cancelWait = undefined;
      this.#releaseHeld(true);
    });
  }

  /** Handles held messages while tokens allow (`granted`: one is already taken); resumes reading when none is left. */
  #releaseHeld(granted: boolean): void {
    let token = granted;
    while (this.#state !== "closed" && this.#held.length > 0) {
      if (!token && this.#state !== "authenticated" && !this.#budget.tryTake()) {
        this.#waitForBudget();
        return;
      }
      token = false;
      const next = this.#held.shift()!;
      this.#onMessage(next.data, next.isBinary);
    }
    if (this.#state !== "closed" && this.#ws.isPaused) this.#ws.resume();
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state === "closed") return;
    this.#services.stats.messagesIn++;
    const verdict = this.#bucket.take();
    if (verdict === "flooding") {
      this.close("FLOODING");
      return;
    }
    if (verdict === "limited") {
      this.#replyError(requestIdOf(data), "RATE_LIMITED");
      return;
    }
    if (isBinary) {
      this.#replyError(null, "BAD_MESSAGE", "Binary frames are not part of the protocol.");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(data.toString());
    } catch {
      this.#replyError(null, "BAD_JSON");
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      this.#replyError(null, "BAD_MESSAGE");
      return;
    }
    const { type, requestId, params } = message as Record<string, unknown>;
    const id = typeof requestId === "string" && requestId.length > 0 && requestId.length <= 64 ? requestId : null;
    if (typeof type !== "string" || id === null) {
      this.#replyError(id, "BAD_MESSAGE");
      return;
    }
    if (!isRequestType(type)) {
      this.#replyError(id, "UNKNOWN_TYPE", `Unknown message type '${type.slice(0, 64)}'.`);
      return;
    }
    this.#services.stats.countRequest(type);
    // Requests run one at a time, in order: a login completes before the next request is judged.
    this.#queue = this.#queue
      .then(() => this.#handle(type, id, params ?? {}))
      .catch((error: unknown) => this.#logger.error({ err: error, type }, "request failed outside its handler"));
  }

  async #handle(type: RequestType, requestId: string, rawParams: unknown): Promise<void> {
    if (this.#state === "closed") return;
    const stateError = this.#checkState(type);
    if (stateError) {
      this.#replyError(requestId, stateError);
      return;
    }
    const parsed = Requests[type].params.safeParse(rawParams);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const custom = issue?.message;
      if (custom && isErrorCode(custom)) {
        this.#replyError(requestId, custom);
      } else {
        const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
        this.#replyError(requestId, "BAD_PARAMS", `Invalid parameters for '${type}': ${where}${issue?.message ?? ""}`);
      }
      return;
    }
    const login = LOGIN_REQUESTS.includes(type);
    if (login) this.#loginInFlight = true;
    try {
      const handler = HANDLERS[type] as (params: unknown, conn: Connection, services: Services) => unknown;
      // In a cluster, a request about a call another node owns is answered by that node.
      const forwarded = this.#services.callRouter?.forward(type, parsed.data, this.#identity?.device);
      const result = await (forwarded ?? handler(parsed.data, this, this.#services));
      this.#send({ type: "response", requestId, ok: true, result });
    } catch (error) {
      if (error instanceof ParleyError) {
        this.#replyError(requestId, error.code, error.message);
      } else {
        this.#logger.error({ err: error, type }, "request handler failed");
        this.#replyError(requestId, "INTERNAL_ERROR");
      }
    } finally {
      if (login) this.#loginAnswered();
    }
  }

  /**
   * A login request was answered. If the login deadline passed meanwhile (the password hash queued
   * on a busy server), the connection is judged now: logged in, it stays; still anonymous, it closes.
   */
  #loginAnswered(): void {
    this.#loginInFlight = false;
    if (!this.#loginDeadlinePassed) return;
    this.#loginDeadlinePassed = false;
    if (this.#state === "anonymous") this.#loginTimedOut();
  }

  #checkState(type: RequestType): ErrorCode | undefined {
    if (this.#state === "greeting") return type === "hello" ? undefined : "HELLO_REQUIRED";
    if (type === "hello") return "ALREADY_HELLO";
    if (this.#state === "anonymous") return ANONYMOUS_REQUESTS.includes(type) ? undefined : "NOT_AUTHENTICATED";
    if (LOGIN_REQUESTS.includes(type)) return "ALREADY_AUTHENTICATED";
    return undefined;
  }

  /** Called by `hello`: the handshake is done. */
  greeted(): void {
    clearTimeout(this.#helloTimer);
    this.transitionTo("anonymous");
    this.#startLoginDeadline();
  }

  /**
   * An anonymous connection must log in within `loginTimeoutMs` (from `hello`, or from a logout). A
   * login sent in time and still being checked when it passes is waited for: the server's own
   * queue (bounded, SERVER_BUSY past it) must not cost the client its connection.
   */
  #startLoginDeadline(): void {
    this.#stopLoginDeadline();
    this.#loginDeadlinePassed = false;
    if (this.#state !== "anonymous") return;
    this.#loginTimer = setTimeout(() => {
      this.#loginTimer = undefined;
      if (this.#state !== "anonymous") return;
      if (this.#loginInFlight) {
        this.#loginDeadlinePassed = true;
        return;
      }
      this.#loginTimedOut();
    }, this.#services.config.connectionLimits.loginTimeoutMs);
    this.#loginTimer.unref();
  }

  #loginTimedOut(): void {
    this.#services.refusals.refused({ action: "connection_refused", address: this.address, reason: "login_timeout" });
    this.close("LOGIN_TIMEOUT");
  }

  #stopLoginDeadline(): void {
    if (this.#loginTimer === undefined) return;
    clearTimeout(this.#loginTimer);
    this.#loginTimer = undefined;
  }
}
