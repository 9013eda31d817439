import type { CloseReason } from "@parley/protocol";
import type { Device } from "../presence/presence-service.js";

/** The logged-in part of a connection. */
export interface Identity {
  userId: number;
  sessionId: number;
  deviceName: string;
  device: Device;
}

/** What a request handler may see and do of the connection that sent the request. */
export interface Connection {
  readonly id: number;
  readonly address: string;
  readonly identity: Identity | undefined;
  /** Called by `hello`: the handshake is done. */
  greeted(): void;
  /** Marks the connection logged in and registers it with presence. */
  authenticate(userId: number, sessionId: number, deviceName: string): void;
  /** Back to anonymous after a logout on this device (the socket stays open). */
  deauthenticate(): void;
  /** Idempotent. Tells the client why (`session.ended`), then closes with the reason's code. */
  close(reason: CloseReason, message?: string): void;
}
