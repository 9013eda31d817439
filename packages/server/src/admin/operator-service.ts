import { randomBytes } from "node:crypto";
import {
  type AuditEntry,
  type OperatorCall,
  type OperatorHistoryCall,
  type OperatorNode,
  type OperatorSnapshot,
  type OperatorUser,
  PASSWORD_MAX,
  PASSWORD_MIN,
  ParleyError,
  type ServerSummary,
  USERNAME_PATTERN,
} from "@parley/protocol";
import type { AccountService } from "../accounts/account-service.js";
import type { UserRow } from "../accounts/user-store.js";
import type { AuditLog } from "../audit/audit-log.js";
import { type CallService, type LiveCall, liveCallState } from "../calls/call-service.js";
import type { MediaRelay } from "../media/index.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { ServerStats } from "../stats/server-stats.js";
import type { BackupResult } from "../storage/backup.js";
import type { CallHistoryQuery, CallHistorySearch } from "./call-history-search.js";
import type { ClusterView, EndedCall } from "./cluster-view.js";

/** The seeds' test users (A6). */
export const DEMO_USERS = [
  { username: "yann", displayName: "Yann" },
  { username: "tugdual", displayName: "Tugdual" },
  { username: "johndoe", displayName: "John Doe" },
  { username: "alice", displayName: "Alice" },
  { username: "bob", displayName: "Bob" },
] as const;
export const DEMO_PASSWORD = "parley-demo";

/** Accounts listed in a snapshot at most (online ones first): the live view stays small. */
const SNAPSHOT_USERS_MAX = 500;

export interface AuditQuery {
  username?: string | undefined;
  action?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  limit?: number | undefined;
}

/**
 * The usernames taking part in a live call (talking or ringing), caller first. The one place
 * that knows how a `LiveCall` names its participants.
 */
export function participantsOf(call: LiveCall): string[] {
  return call.participants.filter((p) => p.state !== "left").map((p) => p.username);
}

/** ISO 8601 in the database's form (toISOString), so string comparisons in SQL hold at the bounds. */
function normalizeTime(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new ParleyError("BAD_PARAMS", `'${value}' is not an ISO 8601 time.`);
  return new Date(ms).toISOString();
}

function isOperatorRow(row: UserRow | undefined): boolean {
  return row !== undefined && row.operator === 1 && row.disabled === 0;
}

export function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) throw new ParleyError("INVALID_PASSWORD");
}

/**
 * O2, O3: every operator operation, written once as a structured call. The text commands of the
 * stdin console and `parley admin` (AdminCommands) and the WebSocket `operator.*` requests of the
 * web operator page both call these; each action names its `actor` and is written to the audit
 * log. Checking that a web user may act is the caller's job (`requireOperator`): the console and
 * the control socket are trusted by construction (the server's terminal, a 0600 socket).
 */
export class OperatorService {
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #audit: AuditLog;
  readonly #stats: ServerStats;
  readonly #calls: CallService;
  readonly #media: MediaRelay;
  readonly #history: CallHistorySearch;
  readonly #version: string;
  readonly #connections: () => number;
  readonly #backup: (file: string) => Promise<BackupResult>;
  readonly #cluster: ClusterView | undefined;
  /** The last CPU and packet sample, for rates between snapshots. */
  #sample = { at: performance.now(), cpu: process.cpuUsage(), packets: 0, cpuPercent: 0, packetsPerSecond: 0 };

  constructor(deps: {
    accounts: AccountService;
    presence: PresenceService;
    audit: AuditLog;
    stats: ServerStats;
    calls: CallService;
    media: MediaRelay;
    history: CallHistorySearch;
    version: string;
    /** Open signaling connections (logged in or not). */
    connections: () => number;
    /** Copies the live database to a new file (storage/backup.ts). */
    backup: (file: string) => Promise<BackupResult>;
    /** With --redis: the cluster as the operator sees it (nodes, users on other nodes, remote kicks). */
    cluster?: ClusterView | undefined;
  }) {
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#audit = deps.audit;
    this.#stats = deps.stats;
    this.#calls = deps.calls;
    this.#media = deps.media;
    this.#history = deps.history;
    this.#version = deps.version;
    this.#connections = deps.connections;
    this.#backup = deps.backup;
    this.#cluster = deps.cluster;
    // Another node's operator lists and ends this node's calls through here.
    deps.cluster?.serveCalls({ calls: () => this.calls(), endCall: (id, actor) => this.#endLocal(id, actor) });
  }

  // ---- Who may ------------------------------------------------------------------------------

  /** Read from the database each time, so a revoke takes effect on the very next request. */
  async isOperator(userId: number): Promise<boolean> {
    return isOperatorRow(await this.#accounts.users.byId(userId));
  }

  /** Throws NOT_OPERATOR unless the user is an (enabled) operator; resolves with their username. */
  async requireOperator(userId: number): Promise<string> {
    const row = await this.#accounts.users.byId(userId);
    if (!row || !isOperatorRow(row)) throw new ParleyError("NOT_OPERATOR");
    return row.username;
  }

  // ---- Views --------------------------------------------------------------------------------

  async snapshot(): Promise<OperatorSnapshot> {
    const [server, users, { calls, unanswered }] = await Promise.all([this.server(), this.users(), this.allCalls()]);
    const nodes = this.nodes();
    if (nodes) {
      // A user of another node in a call another node owns: its call id from that node's list.
      const callOf = new Map<string, string>();
      for (const call of calls) for (const name of call.participants) callOf.set(name, call.callId);
      for (const user of users) user.callId ??= callOf.get(user.username) ?? null;
    }
    return {
      at: new Date().toISOString(),
      server,
      users,
      calls,
      ...(nodes ? { nodes } : {}),
      ...(unanswered.length > 0 ? { unansweredNodes: unanswered } : {}),
    };
  }

  /** In a cluster, the live nodes with their loads (this one first); undefined on a single server. */
  nodes(): OperatorNode[] | undefined {
    const cluster = this.#cluster;
    if (!cluster) return undefined;
    return cluster.liveNodes().map((node) => ({
      id: node.id,
      mediaAddress: node.mediaAddress,
      startedAt: node.startedAt,
      heartbeatAt: node.heartbeatAt,
      self: node.id === cluster.nodeId,
      alive: true,
      load: { ...node.load },
    }));
  }

  /** Accounts, online first (by name), with devices and addresses; at most `limit`. */
  async users(limit = SNAPSHOT_USERS_MAX): Promise<OperatorUser[]> {
    const rows = await this.#accounts.users.all();
    const callOf = new Map<string, string>();
    for (const call of this.#calls.liveCalls()) for (const name of participantsOf(call)) callOf.set(name, call.id);
    const remote = this.#cluster?.remoteUserIds() ?? new Set<number>();
    const online = (row: UserRow) => this.#presence.devicesOf(row.id).length > 0 || remote.has(row.id);
    return [...rows.filter(online), ...rows.filter((row) => !online(row))]
      .slice(0, limit)
      .map((row) => this.#user(row, callOf.get(row.username) ?? null));
  }

  /** One account in detail (USER_NOT_FOUND if none), with its number of sessions. */
  async user(username: string): Promise<OperatorUser & { sessions: number }> {
    const row = await this.#accounts.requireByName(username.toLowerCase());
    const sessions = (await this.#accounts.sessions.ofUser(row.id)).length;
    const call = this.#calls.liveCalls().find((c) => participantsOf(c).includes(row.username));
    return { ...this.#user(row, call?.id ?? null), sessions };
  }

  /** Raw signaling counters since start (the text `stats`). */
  counters() {
    return {
      devices: this.#presence.allDevices().length,
      connectionsTotal: this.#stats.connectionsTotal,
      messagesIn: this.#stats.messagesIn,
      messagesOut: this.#stats.messagesOut,
      errors: new Map(this.#stats.errors),
    };
  }

  #user(row: UserRow, callId: string | null = null): OperatorUser {
    const devices = this.#presence.devicesOf(row.id).sort((a, b) => a.connectedAt.getTime() - b.connectedAt.getTime());
    return {
      id: row.id,
      username: row.username,
      displayName: row.display_name,
      status: row.disabled ? "offline" : this.#presence.statusOf(row),
      disabled: row.disabled === 1,
      operator: row.operator === 1,
      devices: devices.map((d) => ({
        connectionId: d.id,
        deviceName: d.deviceName,
        address: d.address,
        connectedAt: d.connectedAt.toISOString(),
      })),
      connectedSince: devices[0]?.connectedAt.toISOString() ?? null,
      createdAt: row.created_at,
      lastLoginAt: row.last_login_at,
      callId,
      ...(this.#cluster
        ? {
            nodes: [...this.#cluster.nodesOf(row.id)]
              .map(([node, presence]) => ({ node, devices: presence.devices }))
              .sort((a, b) => a.node.localeCompare(b.node)),
          }
        : {}),
    };
  }

  /**
   * The live calls of every live node, each with its `node` in a cluster (this node's first), and
   * the nodes that did not send theirs in time (their calls missing). On a single server: `calls()`.
   */
  async allCalls(): Promise<{ calls: OperatorCall[]; unanswered: string[] }> {
    const [local, remote] = await Promise.all([
      this.calls(),
      this.#cluster?.remoteCalls() ?? Promise.resolve({ calls: [], unanswered: [] }),
    ]);
    return { calls: [...local, ...remote.calls], unanswered: remote.unanswered };
  }

  /** This node's live calls with per-leg counters and RTCP quality (in a cluster, each with this node's id). */
  async calls(): Promise<OperatorCall[]> {
    const owner = new Map<number, string>();
    const devices = this.#presence.allDevices();
    const rows = await Promise.all(devices.map((device) => this.#accounts.users.byId(device.userId)));
    for (const [i, device] of devices.entries()) if (rows[i]) owner.set(device.id, rows[i].username);
    const now = Date.now();
    return Promise.all(
      this.#calls.liveCalls().map(async (call) => ({
        callId: call.id,
        state: liveCallState(call),
        participants: participantsOf(call),
        createdAt: call.createdAt.toISOString(),
        answeredAt: call.answeredAt?.toISOString() ?? null,
        durationMs: Math.max(0, now - (call.answeredAt ?? call.createdAt).getTime()),
        legs: await Promise.all(
          call.legs.map(async (leg) => {
            const quality = await leg.quality();
            return {
              connectionId: leg.device,
              username: leg.username ?? owner.get(leg.device) ?? null,
              state: leg.state,
              packetsIn: leg.packetsIn,
              packetsOut: leg.packetsOut,
              bytesIn: leg.bytesIn,
              bytesOut: leg.bytesOut,
              packetsLost: quality.packetsLost,
              jitterMs: quality.jitterMs === null ? null : Math.round(quality.jitterMs * 10) / 10,
              roundTripMs: quality.roundTripMs === null ? null : Math.round(quality.roundTripMs * 10) / 10,
            };
          }),
        ),
        ...(this.#cluster ? { node: this.#cluster.nodeId } : {}),
      })),
    );
  }

  async server(): Promise<ServerSummary> {
    const [accounts, signupEnabled] = await Promise.all([this.#accounts.users.count(), this.#accounts.signupEnabled()]);
    const media = this.#media.stats();
    this.#resample(media.packetsForwarded);
    const memory = process.memoryUsage();
    return {
      version: this.#version,
      startedAt: this.#stats.startedAt.toISOString(),
      uptimeSeconds: Math.floor((Date.now() - this.#stats.startedAt.getTime()) / 1000),
      cpuPercent: this.#sample.cpuPercent,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      connections: this.#connections(),
      usersOnline: this.#presence.onlineUserCount(),
      accounts,
      calls: this.#calls.liveCalls().length,
      mediaLegs: media.legs,
      packetsRelayed: media.packetsForwarded,
      packetsPerSecond: this.#sample.packetsPerSecond,
      signupEnabled,
    };
  }

  /** Rates over at least ~1 s: several operators asking at once share one sample. */
  #resample(packets: number): void {
    const now = performance.now();
    const elapsedMs = now - this.#sample.at;
    if (elapsedMs < 900) return;
    const cpu = process.cpuUsage(this.#sample.cpu);
    this.#sample = {
      at: now,
      cpu: process.cpuUsage(),
      packets,
      cpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 1000) / 10,
      packetsPerSecond: Math.round(((packets - this.#sample.packets) * 1000) / elapsedMs),
    };
  }

  audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.#audit.query({
      limit: query.limit ?? 200,
      ...(query.username ? { username: query.username.toLowerCase() } : {}),
      ...(query.action ? { action: query.action } : {}),
      ...(query.since ? { since: normalizeTime(query.since)! } : {}),
      ...(query.until ? { until: normalizeTime(query.until)! } : {}),
    });
  }

  callHistory(query: CallHistoryQuery = {}): Promise<OperatorHistoryCall[]> {
    return this.#history.search({
      ...query,
      username: query.username?.toLowerCase(),
      since: normalizeTime(query.since),
      until: normalizeTime(query.until),
    });
  }

  // ---- Actions (each audited) -----------------------------------------------------------------

  async addUser(
    params: { username: string; password: string; displayName?: string | undefined; operator?: boolean },
    actor: string,
  ): Promise<UserRow> {
    const username = params.username.toLowerCase();
    if (!USERNAME_PATTERN.test(username)) throw new ParleyError("INVALID_USERNAME");
    checkPassword(params.password);
    let user = await this.#accounts.createUser(username, params.password, params.displayName);
    this.#audit.record({
      action: "admin.user_added",
      actor,
      username: user.username,
      ...(params.operator ? { detail: { operator: true } } : {}),
    });
    if (params.operator) user = await this.#accounts.setOperator(user.username, true, actor);
    return user;
  }

  /**
   * Disconnects every device of the user (they may log in again); in a cluster, on every node they
   * are online on (each other node is asked over Redis). A node that does not answer makes the
   * whole kick fail with NODE_UNREACHABLE naming it, once the others have been done and audited.
   */
  async kick(username: string, actor: string): Promise<{ username: string; devices: number }> {
    const user = await this.#accounts.requireByName(username);
    const devices = this.#presence.devicesOf(user.id);
    for (const device of devices) device.close("KICKED");
    let count = devices.length;
    const cluster = this.#cluster;
    const elsewhere = cluster ? [...cluster.nodesOf(user.id).keys()].filter((node) => node !== cluster.nodeId) : [];
    const results = await Promise.allSettled(elsewhere.map((node) => cluster!.kickOn(node, user.id, actor)));
    const failed: unknown[] = [];
    for (const result of results) {
      if (result.status === "fulfilled") count += result.value;
      else failed.push(result.reason);
    }
    this.#audit.record({
      action: "admin.kick",
      actor,
      username: user.username,
      detail: { devices: count, ...(elsewhere.length > 0 ? { otherNodes: elsewhere, failed: failed.length } : {}) },
    });
    if (failed.length > 0) throw failed[0];
    return { username: user.username, devices: count };
  }

  /** Disabling also ends every session of the account. Audited by the account service. */
  async setDisabled(username: string, disabled: boolean, actor: string): Promise<OperatorUser> {
    return this.#user(await this.#accounts.setDisabled(username.toLowerCase(), disabled, actor));
  }

  /**
   * Sets `password`, or a random one when none is given (returned, to hand to the user); ends
   * every session of the account. Audited by the account service.
   */
  async resetPassword(
    username: string,
    password: string | undefined,
    actor: string,
  ): Promise<{ username: string; generated: string | null }> {
    const chosen = password ?? randomBytes(9).toString("base64url");
    checkPassword(chosen);
    const user = await this.#accounts.resetPassword(username.toLowerCase(), chosen, actor);
    return { username: user.username, generated: password === undefined ? chosen : null };
  }

  /** Grants or revokes the operator role. Audited by the account service. */
  async setOperator(username: string, operator: boolean, actor: string): Promise<OperatorUser> {
    return this.#user(await this.#accounts.setOperator(username.toLowerCase(), operator, actor));
  }

  /**
   * Ends a live call for everyone in it (its id, or a unique prefix unless `exact`); in a cluster,
   * on whichever node owns it (that node ends and audits it). CALL_NOT_FOUND when no single live
   * call matches; NODE_UNREACHABLE, naming them, when none matches among the nodes that answered
   * but some did not (the call may be theirs), or the owner does not carry the hang-up out in time.
   */
  async endCall(idOrPrefix: string, actor: string, options: { exact?: boolean } = {}): Promise<EndedCall> {
    const matches = (id: string) => (options.exact ? id === idOrPrefix : id.startsWith(idOrPrefix));
    const cluster = this.#cluster;
    const local = this.#calls.liveCalls().filter((c) => matches(c.id));
    // A call id is unique across the cluster: a full id found here needs no other node.
    const here = local.find((c) => c.id === idOrPrefix);
    if (here) return this.#endLocal(here.id, actor);
    if (!cluster) {
      if (options.exact) throw new ParleyError("CALL_NOT_FOUND");
      return this.#endLocal(idOrPrefix, actor);
    }
    const remote = await cluster.remoteCalls();
    const found = [
      ...local.map((c) => ({ callId: c.id, node: cluster.nodeId })),
      ...remote.calls.filter((c) => matches(c.callId)).map((c) => ({ callId: c.callId, node: c.node! })),
    ];
    if (found.length === 1) {
      const [{ callId, node }] = found as [{ callId: string; node: string }];
      return node === cluster.nodeId ? this.#endLocal(callId, actor) : cluster.endCallOn(node, callId, actor);
    }
    if (found.length === 0 && remote.unanswered.length > 0)
      throw new ParleyError(
        "NODE_UNREACHABLE",
        `No live call matches '${idOrPrefix}' on the nodes that answered; ${remote.unanswered.join(", ")} did not answer in time: the call may be there; try again, or run the command on that node.`,
      );
    throw new ParleyError("CALL_NOT_FOUND", `No single live call matches '${idOrPrefix}'.`);
  }

  /** Ends one of this node's calls (a unique id prefix is enough). Audited by the call service. */
  #endLocal(idOrPrefix: string, actor: string): EndedCall {
    const before = this.#calls.liveCalls().find((c) => c.id.startsWith(idOrPrefix));
    const call = this.#calls.endByOperator(idOrPrefix, actor);
    return { callId: call.id, participants: before ? participantsOf(before) : [] };
  }

  async setSignup(enabled: boolean, actor: string): Promise<boolean> {
    await this.#accounts.setSignupEnabled(enabled, actor);
    return this.#accounts.signupEnabled();
  }

  shutdown(actor: string, stop: () => void): void {
    this.#audit.record({ action: "admin.shutdown", actor });
    setImmediate(stop);
  }

  /**
   * Copies the live database to `file` (a new file, owner-only), every audit entry and call
   * recorded so far included. The copy holds password hashes: who took one, and where to, is audited.
   */
  async backup(file: string, actor: string): Promise<BackupResult> {
    await this.#audit.flush();
    await this.#history.flushPending();
    const result = await this.#backup(file);
    this.#audit.record({ action: "admin.backup", actor, detail: { file: result.file, bytes: result.bytes } });
    return result;
  }

  async demoUsers(actor: string): Promise<string[]> {
    const created: string[] = [];
    for (const demo of DEMO_USERS) {
      if (await this.#accounts.users.byName(demo.username)) continue;
      await this.#accounts.createUser(demo.username, DEMO_PASSWORD, demo.displayName);
      created.push(demo.username);
    }
    this.#audit.record({ action: "admin.demo_users", actor, detail: { created } });
    return created;
  }
}
