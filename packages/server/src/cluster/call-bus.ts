import { randomUUID } from "node:crypto";
import {
  type CallInfo,
  type CloseReason,
  isErrorCode,
  ParleyError,
  type RequestType,
  type WireError,
} from "@parley/protocol";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { CallService, RemoteDevices } from "../calls/call-service.js";
import type { Device, PresenceService } from "../presence/presence-service.js";
import { ClusterCallCounts } from "./call-counts.js";
import type { ClusterPresence } from "./cluster-presence.js";
import { NodeInbox } from "./node-inbox.js";
import type { NodeRegistry } from "./node-registry.js";
import { commandConnection } from "./redis-connections.js";
import { type DeviceRef, RemoteDevice } from "./remote-device.js";

/** A request to another node not answered in this time fails (CLUSTER_UNAVAILABLE): nothing waits forever. */
export const CALL_REQUEST_TIMEOUT_MS = 5_000;
/** `call.media` waits longer: the owner's relay answers the SDP offer once its candidates are gathered. */
export const CALL_MEDIA_TIMEOUT_MS = 15_000;

/** How long a call owned elsewhere is remembered after it ended here (as long as its owner remembers it). */
const ENDED_MEMORY_MS = 5 * 60_000;

/** The requests about a call (with its `callId`) a device may send to a node that does not own the call. */
export const FORWARDED_REQUESTS: ReadonlySet<RequestType> = new Set<RequestType>([
  "call.answer",
  "call.decline",
  "call.hangup",
  "call.media",
  "call.hold",
  "call.resume",
  "call.mute",
  "call.add",
]);

/** Runs a forwarded request as the handlers would for `device` (built by the composition root). */
export type RemoteExecutor = (type: RequestType, params: unknown, device: Device) => Promise<unknown>;

/** Every message carries its sender and a sequence number (+1 per message from that sender to that receiver). */
interface Envelope {
  from: string;
  seq: number;
}

type Body =
  | /** Owner -> device's node: the call rings for `userId`; the reply lists their devices there. */
  { kind: "ring"; rid: string; callId: string; userId: number }
  /** Device's node -> owner: a request of `device` about a call the owner holds. */
  | { kind: "request"; rid: string; type: RequestType; params: unknown; device: DeviceRef }
  | { kind: "reply"; rid: string; ok: true; result: unknown }
  | { kind: "reply"; rid: string; ok: false; error: WireError }
  /** Owner -> device's node: an event for one of its devices, serialised as it goes to the client. */
  | { kind: "event"; device: number; userId: number; callId?: string; name?: string; frame: string }
  /** Owner -> device's node: close that device's connection. */
  | { kind: "close"; device: number; userId: number; reason: CloseReason; message?: string }
  /**
   * Device's node -> owner: the device is gone: closed or logged out, or (`lost`) its connection
   * dropped without a close, when the owner keeps its part in the call for the grace period.
   */
  | { kind: "gone"; device: number; lost?: true }
  /**
   * A device's (new) node -> every other node: it takes back (`auth.resume`) these calls; the reply
   * (`ResumeReply`) says which the node knows and which it handed back.
   */
  | { kind: "resume"; rid: string; device: DeviceRef; callIds: string[] };

/** A node's answer to `resume`: the calls it holds (or held until recently) among those asked, and those taken back. */
interface ResumeReply {
  known: string[];
  calls: CallInfo[];
}

type CallMessage = Envelope & Body;

/** On a device's node: a call another node owns, and this node's devices told about it. */
interface ForeignCall {
  owner: string;
  /** Device id -> whether it answered (its call.answer went through). */
  devices: Map<number, { userId: number; answered: boolean }>;
}

interface Pending {
  node: string;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * 1:1 calls across the nodes of a cluster (docs/scaling.md, "Calls across nodes"). A call lives on
 * the caller's node (its owner), which holds its state machine, history and media legs.
 *
 * On the owner, each device of another node that rings or talks in a call is a `RemoteDevice`: the
 * call service treats it like a local connection's device, and what it pushes to it is written
 * to that device's node's inbox. On the device's node, the requests its devices send about a call
 * owned elsewhere (`forward`, called by the connection before its own handlers) go to the owner,
 * which runs them with its handlers and publishes the reply; events come back the same way and are
 * written to the connection unchanged. A device that goes is reported to the owner (its call goes on
 * as for a closed connection); when a node is declared dead, its devices leave the calls this node
 * owns, and the calls it owned end for this node's devices with reason `node_lost`.
 *
 * Messages go through the nodes' inboxes (`NodeInbox`: a Redis stream per node, read from the last
 * entry seen), so a node whose connection to Redis dropped reads on without a gap; events, replies
 * and departures that cannot be written while Redis is away are written when it is back, and a
 * message written twice is dropped by its sequence number. One more connection of its own holds
 * the per-user call counts (no offline queue: a write that cannot go fails at once).
 */
export class CallBus implements RemoteDevices {
  readonly #node: string;
  readonly #redis: Redis;
  #inbox: NodeInbox | undefined;
  readonly #url: string;
  readonly #registry: NodeRegistry;
  readonly #remotePresence: ClusterPresence;
  readonly #presence: PresenceService;
  readonly #calls: CallService;
  readonly #logger: Logger;
  /** Per-user call counts of this node, shared (`--max-calls-per-user` across nodes). */
  readonly #counts: ClusterCallCounts;
  #execute: RemoteExecutor | undefined;
  /** Owner side: devices of other nodes, by `node:id`. */
  readonly #remoteDevices = new Map<string, RemoteDevice>();
  /** Device side: calls owned by other nodes that this node's devices ring or talk in, by call id. */
  readonly #foreign = new Map<string, ForeignCall>();
  readonly #pending = new Map<string, Pending>();
  /** Per receiving node: the sequence number of the last message sent to it. */
  readonly #seqTo = new Map<string, number>();
  readonly #lastSeq = new Map<string, number>();
  #closed = false;

  private constructor(deps: {
    url: string;
    node: string;
    registry: NodeRegistry;
    remotePresence: ClusterPresence;
    presence: PresenceService;
    calls: CallService;
    logger: Logger;
  }) {
    this.#node = deps.node;
    this.#registry = deps.registry;
    this.#remotePresence = deps.remotePresence;
    this.#presence = deps.presence;
    this.#calls = deps.calls;
    this.#logger = deps.logger;
    this.#redis = commandConnection(deps.url);
    this.#url = deps.url;
    this.#counts = new ClusterCallCounts({
      node: deps.node,
      redis: this.#redis,
      registry: deps.registry,
      logger: deps.logger,
    });
    // The cluster's own connections already report Redis going away.
    this.#redis.on("error", () => undefined);
  }

  /** Connects, reads this node's inbox and lets the call service ring other nodes' devices. */
  static async start(deps: {
    url: string;
    node: string;
    registry: NodeRegistry;
    remotePresence: ClusterPresence;
    presence: PresenceService;
    calls: CallService;
    logger: Logger;
  }): Promise<CallBus> {
    const bus = new CallBus(deps);
    try {
      await bus.#redis.connect();
      bus.#inbox = await NodeInbox.start({
        url: bus.#url,
        node: bus.#node,
        logger: bus.#logger,
        onMessage: (message) => bus.#received(message),
      });
      await bus.#counts.start();
    } catch (error) {
      bus.#redis.disconnect();
      await bus.#inbox?.close();
      throw error;
    }
    deps.registry.on("nodeDown", (id) => bus.#nodeDown(id));
    deps.presence.on("deviceDetached", (device, lost) => bus.#localDeviceGone(device, lost));
    deps.calls.setRemoteDevices(bus);
    // A user talking in a call another node owns is in-call here too (and shared as such).
    deps.presence.setInCallProvider((userId) => deps.calls.isInActiveCall(userId) || bus.#talksElsewhere(userId));
    return bus;
  }

  /** Requests of other nodes' devices are run from now on (before: refused with CLUSTER_UNAVAILABLE). */
  serve(execute: RemoteExecutor): void {
    this.#execute = execute;
  }

  // RemoteDevices (owner side)

  countOf(userId: number): number {
    return this.#remotePresence.devicesOf(userId);
  }

  ring(callId: string, userId: number): void {
    for (const node of this.#remotePresence.nodesOf(userId).keys()) {
      if (node === this.#node) continue;
      this.#request(node, { kind: "ring", callId, userId }, CALL_REQUEST_TIMEOUT_MS).then(
        (refs) => {
          const devices = (refs as DeviceRef[]).map((ref) => this.#deviceOf(node, ref));
          this.#calls.ringAlso(callId, userId, devices);
        },
        (error: unknown) => this.#logger.warn({ err: error, node, callId, userId }, "devices on another node not rung"),
      );
    }
  }

  inCall(userId: number): boolean {
    return this.#remotePresence.inCall(userId);
  }

  callsChanged(userId: number, count: number): void {
    this.#counts.changed(userId, count);
  }

  callsElsewhere(userIds: readonly number[]): Promise<ReadonlyMap<number, number>> {
    return this.#counts.elsewhere(userIds);
  }

  /**
   * Device side: one of this node's devices takes back calls this node does not own. Every other
   * live node is asked (the device's node does not know which owns them: the device may have been on
   * any); the owner re-binds the call to this device and hands it back. Done once every call asked
   * for is known to a node, or every node answered; a node that does not answer in time counts as
   * knowing none.
   */
  async reattach(device: Device, callIds: readonly string[]): Promise<CallInfo[]> {
    const ref = refOf(device);
    const nodes = this.#registry
      .liveNodes()
      .map((info) => info.id)
      .filter((id) => id !== this.#node);
    if (nodes.length === 0) return [];
    const unknown = new Set(callIds);
    const taken: { owner: string; info: CallInfo }[] = [];
    await new Promise<void>((resolve) => {
      let waiting = nodes.length;
      for (const node of nodes) {
        this.#request(node, { kind: "resume", device: ref, callIds: [...callIds] }, CALL_REQUEST_TIMEOUT_MS)
          .then(
            (result) => {
              const reply = result as ResumeReply;
              for (const callId of reply.known) unknown.delete(callId);
              for (const info of reply.calls) taken.push({ owner: node, info });
            },
            (error: unknown) => this.#logger.warn({ err: error, node }, "a node did not answer a call resume"),
          )
          .finally(() => {
            waiting--;
            if (waiting === 0 || unknown.size === 0) resolve();
          });
      }
    });
    for (const { owner, info } of taken) {
      this.#track(info.callId, owner, device.id, device.userId);
      const entry = this.#foreign.get(info.callId)?.devices.get(device.id);
      if (entry) entry.answered = true;
    }
    if (taken.length > 0) {
      if (!this.#presence.isAttached(device)) {
        // It went again while its calls were handed back: the owners wait for it once more.
        this.#localDeviceGone(device, true);
        return [];
      }
      this.#presence.refresh(device.userId);
    }
    return taken.map(({ info }) => info);
  }

  isAttached(device: Device): boolean {
    if (!(device instanceof RemoteDevice)) return false;
    return this.#remoteDevices.get(`${device.node}:${device.ref.id}`) === device && this.#registry.isLive(device.node);
  }

  // Device side

  /**
   * A request of one of this node's devices: if it is about a call another node owns, it is sent
   * there and the owner's answer (result, or its typed error) is returned; otherwise undefined (this
   * node's handlers run it).
   */
  forward(type: RequestType, params: unknown, device: Device | undefined): Promise<unknown> | undefined {
    if (!device || !FORWARDED_REQUESTS.has(type)) return undefined;
    const callId = (params as { callId?: unknown }).callId;
    const foreign = typeof callId === "string" ? this.#foreign.get(callId) : undefined;
    if (!foreign) return undefined;
    const ref = refOf(device);
    const timeout = type === "call.media" ? CALL_MEDIA_TIMEOUT_MS : CALL_REQUEST_TIMEOUT_MS;
    return this.#request(foreign.owner, { kind: "request", type, params, device: ref }, timeout).then((result) => {
      if (type === "call.answer") {
        const entry = foreign.devices.get(device.id);
        if (entry) entry.answered = true;
        this.#presence.refresh(device.userId);
      }
      return result;
    });
  }

  /** Stops listening; requests still waiting fail. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const [rid, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(rid);
      pending.reject(new ParleyError("CLUSTER_UNAVAILABLE", "This server is shutting down."));
    }
    await this.#inbox?.close();
    await this.#counts.close();
    // Events published during the shutdown (calls ended) go out before the connection closes.
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  // Messages

  /**
   * Writes `message` to `node`'s inbox. Requests (`resend` false) fail at once when Redis cannot
   * take them: their sender is told, and a request carried out after its sender gave up would
   * surprise everyone. Events, replies and departures (`resend`) are kept and written in order
   * when Redis is back: a hang-up must reach the other node, whenever it can.
   */
  #publish(node: string, message: Body, resend: boolean): Promise<void> {
    if (!this.#inbox) return Promise.reject(new Error("not started"));
    const seq = (this.#seqTo.get(node) ?? 0) + 1;
    this.#seqTo.set(node, seq);
    const full = { ...message, from: this.#node, seq } as CallMessage;
    return this.#inbox.send(node, JSON.stringify(full), resend);
  }

  #send(node: string, message: Body): void {
    this.#publish(node, message, true).catch((error: unknown) =>
      this.#logger.warn({ err: error, node, kind: message.kind }, "message to another node not sent"),
    );
  }

  #request(
    node: string,
    message:
      | { kind: "ring"; callId: string; userId: number }
      | { kind: "request"; type: RequestType; params: unknown; device: DeviceRef }
      | { kind: "resume"; device: DeviceRef; callIds: string[] },
    timeoutMs: number,
  ): Promise<unknown> {
    if (this.#closed) return Promise.reject(new ParleyError("CLUSTER_UNAVAILABLE", "This server is shutting down."));
    const rid = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(rid);
        reject(new ParleyError("CLUSTER_UNAVAILABLE", "The server holding this call did not answer in time."));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(rid, { node, resolve, reject, timer });
      this.#publish(node, { ...message, rid }, false).catch((error: unknown) => {
        clearTimeout(timer);
        this.#pending.delete(rid);
        reject(
          new ParleyError("CLUSTER_UNAVAILABLE", "The server holding this call cannot be reached.", { cause: error }),
        );
      });
    });
  }

  #received(json: string): void {
    let message: CallMessage;
    try {
      message = JSON.parse(json) as CallMessage;
    } catch {
      return;
    }
    if (this.#closed) return;
    const last = this.#lastSeq.get(message.from);
    // Written twice (Redis took it but its answer was lost, so it was written again): once is enough.
    if (last !== undefined && message.seq <= last) return;
    if (last !== undefined && message.seq !== last + 1) {
      this.#logger.warn(
        { node: message.from, expected: last + 1, got: message.seq },
        "call messages from a node missed",
      );
    }
    this.#lastSeq.set(message.from, message.seq);
    switch (message.kind) {
      case "ring":
        this.#ringHere(message);
        return;
      case "request":
        void this.#serveRequest(message);
        return;
      case "resume":
        this.#serveResume(message);
        return;
      case "reply":
        this.#replied(message);
        return;
      case "event":
        this.#deliver(message);
        return;
      case "close":
        this.#localDevice(message.userId, message.device)?.close(message.reason, message.message);
        return;
      case "gone": {
        const key = `${message.from}:${message.device}`;
        const device = this.#remoteDevices.get(key);
        if (!device) return;
        this.#remoteDevices.delete(key);
        this.#calls.remoteDeviceGone(device, message.lost === true);
        return;
      }
    }
  }

  /** Device side: the owner asks which devices of the user are here; they are tracked for the call. */
  #ringHere(message: Envelope & { rid: string; callId: string; userId: number }): void {
    const devices = this.#presence.devicesOf(message.userId);
    for (const device of devices) this.#track(message.callId, message.from, device.id, device.userId);
    const refs: DeviceRef[] = devices.map(refOf);
    this.#send(message.from, { kind: "reply", rid: message.rid, ok: true, result: refs });
  }

  /** Owner side: a request of another node's device, run by the handlers as if it were connected here. */
  async #serveRequest(message: Envelope & { rid: string; type: RequestType; params: unknown; device: DeviceRef }) {
    const reply = (outcome: { ok: true; result: unknown } | { ok: false; error: WireError }) =>
      this.#send(message.from, { kind: "reply", rid: message.rid, ...outcome });
    const execute = this.#execute;
    if (!execute || !FORWARDED_REQUESTS.has(message.type)) {
      reply({ ok: false, error: new ParleyError("CLUSTER_UNAVAILABLE").toWire() });
      return;
    }
    try {
      const result = await execute(message.type, message.params, this.#deviceOf(message.from, message.device));
      reply({ ok: true, result });
    } catch (error) {
      if (error instanceof ParleyError) {
        reply({ ok: false, error: error.toWire() });
      } else {
        this.#logger.error({ err: error, type: message.type }, "request of another node's device failed");
        reply({ ok: false, error: new ParleyError("INTERNAL_ERROR").toWire() });
      }
    }
  }

  /**
   * Owner side: a device now on another node takes back calls (`auth.resume` there). The calls of
   * this node among them are re-bound to it as on one node (`reattachHere`): the others see it back,
   * its media leg carries on; a call that ended meanwhile is told to it (`call.ended`, before the reply).
   */
  #serveResume(message: Envelope & { rid: string; device: DeviceRef; callIds: string[] }): void {
    const known = message.callIds.filter((callId) => this.#calls.knows(callId));
    let calls: CallInfo[] = [];
    if (known.length > 0) {
      const key = `${message.from}:${message.device.id}`;
      const seen = this.#remoteDevices.has(key);
      calls = this.#calls.reattachHere(this.#deviceOf(message.from, message.device), known);
      // Nothing taken back (ended meanwhile: told already): the device is not kept for nothing.
      if (calls.length === 0 && !seen) this.#remoteDevices.delete(key);
    }
    const reply: ResumeReply = { known, calls };
    this.#send(message.from, { kind: "reply", rid: message.rid, ok: true, result: reply });
  }

  #replied(message: Envelope & { rid: string } & ({ ok: true; result: unknown } | { ok: false; error: WireError })) {
    const pending = this.#pending.get(message.rid);
    if (!pending) return;
    this.#pending.delete(message.rid);
    clearTimeout(pending.timer);
    if (message.ok) pending.resolve(message.result);
    else {
      const code = isErrorCode(message.error.code) ? message.error.code : "INTERNAL_ERROR";
      pending.reject(new ParleyError(code, message.error.message));
    }
  }

  /** Device side: an event of the owner for one of this node's devices, written to it unchanged. */
  #deliver(message: Envelope & { device: number; userId: number; callId?: string; name?: string; frame: string }) {
    const device = this.#localDevice(message.userId, message.device);
    if (!device) return;
    if (message.callId) {
      if (message.name === "call.ended") this.#untrack(message.callId, device.id);
      else this.#track(message.callId, message.from, device.id, device.userId);
    }
    device.pushFrame(message.frame);
  }

  #localDevice(userId: number, id: number): Device | undefined {
    return this.#presence.devicesOf(userId).find((device) => device.id === id);
  }

  /** Owner side: the one RemoteDevice for a device of another node. */
  #deviceOf(node: string, ref: DeviceRef): RemoteDevice {
    const key = `${node}:${ref.id}`;
    let device = this.#remoteDevices.get(key);
    if (!device) {
      device = new RemoteDevice(node, ref, {
        event: (to, frame, callId) => {
          const name = /^\{"type":"event","event":"([^"]+)"/.exec(frame)?.[1];
          this.#send(to.node, {
            kind: "event",
            device: to.ref.id,
            userId: to.userId,
            ...(callId ? { callId } : {}),
            ...(name ? { name } : {}),
            frame,
          });
        },
        close: (to, reason, text) =>
          this.#send(to.node, {
            kind: "close",
            device: to.ref.id,
            userId: to.userId,
            reason,
            ...(text ? { message: text } : {}),
          }),
      });
      this.#remoteDevices.set(key, device);
    }
    return device;
  }

  #track(callId: string, owner: string, deviceId: number, userId: number): void {
    let foreign = this.#foreign.get(callId);
    if (!foreign) {
      foreign = { owner, devices: new Map() };
      this.#foreign.set(callId, foreign);
    }
    if (!foreign.devices.has(deviceId)) foreign.devices.set(deviceId, { userId, answered: false });
  }

  /**
   * The device is no longer told about the call. A call none of this node's devices is told about
   * is still routed to its owner for ENDED_MEMORY_MS, so a late request gets the owner's answer
   * (CALL_ENDED), as on one node.
   */
  #untrack(callId: string, deviceId: number): void {
    const foreign = this.#foreign.get(callId);
    const entry = foreign?.devices.get(deviceId);
    if (!foreign || !entry) return;
    foreign.devices.delete(deviceId);
    if (entry.answered) this.#presence.refresh(entry.userId);
    if (foreign.devices.size > 0) return;
    const forget = setTimeout(() => {
      if (this.#foreign.get(callId) === foreign && foreign.devices.size === 0) this.#foreign.delete(callId);
    }, ENDED_MEMORY_MS);
    forget.unref();
  }

  /** Device side: whether the user answered, on a device of this node, a call another node owns. */
  #talksElsewhere(userId: number): boolean {
    for (const foreign of this.#foreign.values()) {
      for (const entry of foreign.devices.values()) if (entry.userId === userId && entry.answered) return true;
    }
    return false;
  }

  /**
   * Device side: one of this node's devices went; the owners of its calls are told, and whether its
   * connection was lost (it may come back, here or through another node, within the grace period).
   */
  #localDeviceGone(device: Device, lost: boolean): void {
    const owners = new Set<string>();
    for (const [callId, foreign] of [...this.#foreign]) {
      if (!foreign.devices.has(device.id)) continue;
      owners.add(foreign.owner);
      this.#untrack(callId, device.id);
    }
    for (const owner of owners) this.#send(owner, { kind: "gone", device: device.id, ...(lost ? { lost } : {}) });
  }

  /**
   * A node was declared dead: requests waiting on it fail, the calls it owned end for this node's
   * devices (`node_lost`), and its devices' connections count as lost in the calls this node owns
   * (they may take them back through another node within the grace period).
   */
  #nodeDown(node: string): void {
    this.#lastSeq.delete(node);
    this.#seqTo.delete(node);
    this.#inbox?.forget(node);
    for (const [rid, pending] of [...this.#pending]) {
      if (pending.node !== node) continue;
      clearTimeout(pending.timer);
      this.#pending.delete(rid);
      pending.reject(new ParleyError("CLUSTER_UNAVAILABLE", "The server holding this call is gone."));
    }
    for (const [callId, foreign] of [...this.#foreign]) {
      if (foreign.owner !== node) continue;
      this.#foreign.delete(callId);
      for (const [deviceId, { userId, answered }] of foreign.devices) {
        this.#localDevice(userId, deviceId)?.push("call.ended", {
          callId,
          reason: "node_lost",
          outcome: answered ? "answered" : "failed",
          by: null,
        });
        if (answered) this.#presence.refresh(userId);
      }
      this.#logger.warn({ callId, node }, "call ended: the node holding it died");
    }
    for (const [key, device] of [...this.#remoteDevices]) {
      if (device.node !== node) continue;
      this.#remoteDevices.delete(key);
      this.#calls.remoteDeviceGone(device, true);
    }
  }
}

/** How a device is described to another node (no client address). */
function refOf(device: Device): DeviceRef {
  return {
    id: device.id,
    userId: device.userId,
    sessionId: device.sessionId,
    deviceName: device.deviceName,
    connectedAt: device.connectedAt.toISOString(),
  };
}
