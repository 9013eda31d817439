import { type CloseReason, type EventData, type EventName, ParleyError } from "@parley/protocol";
import type { Device } from "../presence/presence-service.js";
import type { Connection } from "../signaling/connection.js";

/** A device as its own node describes it to the node that owns a call (no client address). */
export interface DeviceRef {
  /** The device's id on its own node (its connection id there). */
  id: number;
  userId: number;
  sessionId: number;
  deviceName: string;
  connectedAt: string;
}

/** What a remote device does with what the call service hands it: sent to the device's node. */
export interface DeviceLink {
  event(device: RemoteDevice, frame: string, callId: string | undefined): void;
  close(device: RemoteDevice, reason: CloseReason, message?: string): void;
}

/** Ids of remote devices on this node: negative, so they never meet a local connection's id. */
let nextRemoteId = -1;

/**
 * On the node that owns a call, a device connected to another node: to the call service it is a
 * device like a local connection's (it rings, answers, talks, has a media leg), and every event
 * pushed to it is serialised once and sent to its node, which writes it to the connection unchanged.
 */
export class RemoteDevice implements Device {
  /** Unique on this node (negative); `ref.id` is the device's id on its own node. */
  readonly id = nextRemoteId--;
  readonly userId: number;
  readonly sessionId: number;
  readonly deviceName: string;
  /** Never a client address: the node it is connected to, for the operator. */
  readonly address: string;
  readonly connectedAt: Date;
  readonly node: string;
  readonly ref: DeviceRef;
  readonly #link: DeviceLink;

  constructor(node: string, ref: DeviceRef, link: DeviceLink) {
    this.node = node;
    this.ref = ref;
    this.userId = ref.userId;
    this.sessionId = ref.sessionId;
    this.deviceName = ref.deviceName;
    this.address = `node ${node}`;
    this.connectedAt = new Date(ref.connectedAt);
    this.#link = link;
  }

  push<E extends EventName>(event: E, data: EventData<E>): void {
    this.#link.event(this, JSON.stringify({ type: "event", event, data }), callIdOf(data));
  }

  pushFrame(frame: string): void {
    this.#link.event(this, frame, undefined);
  }

  close(reason: CloseReason, message?: string): void {
    this.#link.close(this, reason, message);
  }
}

/** The call an event is about (`callId`, or `call.callId` for `call.incoming` and `call.info`). */
export function callIdOf(data: unknown): string | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const { callId, call } = data as { callId?: unknown; call?: { callId?: unknown } };
  if (typeof callId === "string") return callId;
  if (typeof call?.callId === "string") return call.callId;
  return undefined;
}

/**
 * The connection a forwarded request runs on, on the node that owns the call: the remote device
 * as its logged-in identity. Only call requests are forwarded, which never log in or out.
 */
export function remoteConnection(device: Device): Connection {
  return {
    id: device.id,
    address: device.address,
    identity: { userId: device.userId, sessionId: device.sessionId, deviceName: device.deviceName, device },
    greeted: () => undefined,
    authenticate: () => {
      throw new ParleyError("ALREADY_AUTHENTICATED");
    },
    deauthenticate: () => undefined,
    close: (reason, message) => device.close(reason, message),
  };
}
