import type { CloseReason, DirectoryUser, EventData, EventName, PresenceStatus } from "@parley/protocol";
import type { Logger } from "pino";
import type { AccountService } from "../accounts/account-service.js";
import { toSelf, type UserRow } from "../accounts/user-store.js";
import { TypedEmitter } from "../util/typed-emitter.js";

/** One logged-in connection of a user, as presence sees it. */
export interface Device {
  readonly id: number;
  readonly userId: number;
  readonly sessionId: number;
  readonly deviceName: string;
  /** The client's address: shown to the operator, never sent to other clients. */
  readonly address: string;
  readonly connectedAt: Date;
  push<E extends EventName>(event: E, data: EventData<E>): void;
  /** An event already serialised (`{type: "event", event, data}` as JSON): a broadcast serialises once. */
  pushFrame(frame: string): void;
  close(reason: CloseReason, message?: string): void;
}

/** A user's presence on one node of a cluster. */
export interface NodePresence {
  /** Devices logged in on that node. */
  devices: number;
  /** In an answered call on that node. */
  inCall: boolean;
  /** The status the user chose (as their row had it when the node last announced them). */
  status: PresenceStatus;
}

/** What the other nodes of a cluster hold of a user (cluster/cluster-presence.ts). */
export interface RemotePresence {
  devicesOf(userId: number): number;
  inCall(userId: number): boolean;
  /**
   * This node's presence of a user changed: shared with the other nodes. `status` is undefined when
   * the user's row could not be read: the one last shared stands.
   */
  localChanged(userId: number, entry: Omit<NodePresence, "status"> & { status: PresenceStatus | undefined }): void;
}

/**
 * P1, P2, P4, A5: who is connected from which devices, each user's visible status,
 * and the live directory pushed to every logged-in device as it changes.
 */
/**
 * `deviceDetached` says whether the device's connection was lost (network, missed heartbeat: it may
 * come back and resume) rather than closed on purpose (logout, close by either side).
 */
export class PresenceService extends TypedEmitter<{ deviceAttached: [Device]; deviceDetached: [Device, boolean] }> {
  readonly #devices = new Map<number, Set<Device>>();
  #inCall: (userId: number) => boolean = () => false;
  #remote: RemotePresence | undefined;
  readonly #accounts: AccountService;
  readonly #logger: Logger;

  constructor(deps: { accounts: AccountService; logger: Logger }) {
    super(deps.logger);
    this.#accounts = deps.accounts;
    this.#logger = deps.logger;
    const accounts = deps.accounts;
    accounts.on("userAdded", (row) => this.userAdded(row));
    accounts.on("userUpdated", (row) => this.userUpdated(row));
    accounts.on("userRemoved", (userId) => this.userRemoved(userId));
    // Revoked (SESSION_REVOKED, ACCOUNT_DISABLED) or expired (SESSION_EXPIRED): each connection
    // on an ended session closes with the reason's code.
    accounts.on("sessionsRevoked", ({ userId, sessionIds, reason, exceptConnection }) => {
      for (const device of this.devicesOf(userId)) {
        if (sessionIds.includes(device.sessionId) && device.id !== exceptConnection) device.close(reason);
      }
    });
    accounts.setConnectedSessionsProvider((userId) => this.devicesOf(userId).map((device) => device.sessionId));
  }

  /** A user joined the directory (registered, added by an operator, enabled again), here or on another node. */
  userAdded(row: UserRow): void {
    this.broadcast("directory.userAdded", { user: this.#entry(row) });
  }

  /** A user's directory entry changed (name, status chosen...), here or on another node: their own devices hear it too. */
  userUpdated(row: UserRow): void {
    this.broadcast("directory.userUpdated", { user: this.#entry(row) });
    this.pushToUser(row.id, "account.updated", { user: toSelf(row) });
  }

  /** A user left the directory (deleted, disabled), here or on another node. */
  userRemoved(userId: number): void {
    this.broadcast("directory.userRemoved", { userId });
  }

  attach(device: Device): void {
    let set = this.#devices.get(device.userId);
    if (!set) {
      set = new Set();
      this.#devices.set(device.userId, set);
    }
    set.add(device);
    this.emit("deviceAttached", device);
    this.#announce(device.userId);
  }

  detach(device: Device, lost = false): void {
    const set = this.#devices.get(device.userId);
    if (!set?.delete(device)) return;
    if (set.size === 0) this.#devices.delete(device.userId);
    this.emit("deviceDetached", device, lost);
    this.#announce(device.userId);
  }

  /** True while the device is attached (logged in and connected): a request that waited on the database checks. */
  isAttached(device: Device): boolean {
    return this.#devices.get(device.userId)?.has(device) ?? false;
  }

  /** Calls tell presence who is in an answered call ("in-call" is automatic). */
  setInCallProvider(inCall: (userId: number) => boolean): void {
    this.#inCall = inCall;
  }

  /**
   * Joins a cluster: users count as online with devices on other nodes too, in-call with a call
   * there, and every change on this node is handed to `remote`.
   */
  setRemote(remote: RemotePresence): void {
    this.#remote = remote;
  }

  /** Presence of these users changed on another node: announced to this node's clients. */
  remoteChanged(userIds: Iterable<number>): void {
    for (const userId of userIds) this.#announce(userId, false);
  }

  /** Re-announces a user whose automatic status may have changed. */
  refresh(userId: number): void {
    this.#announce(userId);
  }

  devicesOf(userId: number): Device[] {
    return [...(this.#devices.get(userId) ?? [])];
  }

  allDevices(): Device[] {
    return [...this.#devices.values()].flatMap((set) => [...set]);
  }

  onlineUserCount(): number {
    return this.#devices.size;
  }

  statusOf(row: UserRow): PresenceStatus {
    if (this.#deviceCount(row.id) === 0) return "offline";
    return this.#inCall(row.id) || this.#remote?.inCall(row.id) ? "in-call" : row.status;
  }

  /** Devices logged in, on this node and (in a cluster) on the others. */
  #deviceCount(userId: number): number {
    return (this.#devices.get(userId)?.size ?? 0) + (this.#remote?.devicesOf(userId) ?? 0);
  }

  async directory(): Promise<DirectoryUser[]> {
    return (await this.#accounts.users.enabled()).map((row) => this.#entry(row));
  }

  /** The user chose a status: persisted, pushed to everyone. */
  statusChanged(row: UserRow): void {
    this.pushToUser(row.id, "account.updated", { user: toSelf(row) });
    this.#announce(row.id);
  }

  /** Pushes an event to every logged-in device, serialised once for all of them. */
  broadcast<E extends EventName>(event: E, data: EventData<E>): void {
    if (this.#devices.size === 0) return;
    const frame = JSON.stringify({ type: "event", event, data });
    for (const set of this.#devices.values()) for (const device of set) device.pushFrame(frame);
  }

  pushToUser<E extends EventName>(userId: number, event: E, data: EventData<E>): void {
    for (const device of this.#devices.get(userId) ?? []) device.push(event, data);
  }

  /**
   * Broadcasts the user's presence as it stands when their row is read (the automatic part, devices
   * and calls, is read then too, so of two announcements the later one is always current). A change
   * on this node (`local`) is also handed to the other nodes of a cluster.
   */
  #announce(userId: number, local = true): void {
    this.#accounts.users.byId(userId).then(
      (row) => {
        if (local) this.#shareLocal(userId, row && !row.disabled ? row.status : "offline");
        if (!row || row.disabled) return;
        const entry = this.#entry(row);
        this.#logger.debug({ userId, status: entry.status, devices: entry.devices }, "presence changed");
        this.broadcast("presence.changed", { userId, status: entry.status, devices: entry.devices });
      },
      (error: unknown) => {
        // The database is away: the other nodes still learn the devices, with the status they knew.
        if (local) this.#shareLocal(userId, undefined);
        this.#logger.warn({ err: error, userId }, "presence change not announced");
      },
    );
  }

  /** Hands this node's presence of a user to the other nodes of a cluster (none: nothing to do). */
  #shareLocal(userId: number, status: PresenceStatus | undefined): void {
    if (!this.#remote) return;
    const devices = this.#devices.get(userId)?.size ?? 0;
    this.#remote.localChanged(userId, { devices, inCall: devices > 0 && this.#inCall(userId), status });
  }

  #entry(row: UserRow): DirectoryUser {
    return {
      id: row.id,
      username: row.username,
      displayName: row.display_name,
      status: this.statusOf(row),
      devices: this.#deviceCount(row.id),
    };
  }
}
