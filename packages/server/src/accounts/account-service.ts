import { randomUUID } from "node:crypto";
import { ParleyError, type SelectableStatus } from "@parley/protocol";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/audit-log.js";
import type { RefusalSummary } from "../audit/refusal-summary.js";
import type { ServerConfig } from "../config.js";
import type { SettingsStore } from "../storage/settings-store.js";
import type { SqlClient } from "../storage/sql-client.js";
import type { Storage } from "../storage/storage.js";
import { TypedEmitter } from "../util/typed-emitter.js";
import { DeviceTrust } from "./device-trust.js";
import { type HashLane, HashPool } from "./hash-pool.js";
import type { LoginCounts } from "./login-counts.js";
import { type LoginAttempt, LoginLimiter } from "./login-limiter.js";
import { dummyPasswordHash, hashPassword, verifyPassword } from "./password-hasher.js";
import { type SessionRow, SessionStore } from "./session-store.js";
import { SlidingWindowCounter } from "./sliding-window.js";
import { SlowedAccountGate } from "./slowed-account-gate.js";
import { type UserRow, UserStore } from "./user-store.js";

/** Why sessions were ended: the signaling layer closes their connections with the matching close code. */
export type RevokeReason = "SESSION_REVOKED" | "ACCOUNT_DISABLED" | "SESSION_EXPIRED";

export interface AccountEvents {
  userAdded: [UserRow];
  userUpdated: [UserRow];
  /** Deleted or disabled: gone from the directory. */
  userRemoved: [number];
  /**
   * `sessionIds` are the ended sessions: every connection using one must be closed, except
   * `exceptConnection` (the connection that asked, which answers and carries on itself).
   */
  sessionsRevoked: [{ userId: number; sessionIds: number[]; reason: RevokeReason; exceptConnection?: number }];
  /**
   * The connection to a shared database came back after a loss: messages of other processes
   * (ended sessions) may have been missed, so connected sessions are checked against the database.
   */
  resync: [];
}

export interface AccountDeps {
  storage: Storage;
  audit: AuditLog;
  refusals: RefusalSummary;
  settings: SettingsStore;
  config: ServerConfig;
  logger: Logger;
  /** Names this process to the others sharing the database (random when not given). */
  node?: string;
}

export interface Authenticated {
  user: UserRow;
  session: SessionRow;
  token: string;
  /** After a password login or a registration: this device's token (see DeviceTrust). */
  deviceToken?: string;
}

/** Who asks: used for rate limits, the audit log and to spare the asking connection. */
export interface Origin {
  address: string;
  /** The signaling connection that made the request. */
  connectionId?: number;
}

const SIGNUP_SETTING = "signup_enabled";

/** The channel on which server processes sharing a database tell each other of ended sessions. */
export const SESSIONS_CHANNEL = "parley_sessions_revoked";

/** What one process tells the others when sessions end (see `sessionsRevoked`). */
interface RevocationMessage {
  node: string;
  userId: number;
  sessionIds: number[];
  reason: RevokeReason;
}

/** The database writes of a login: the new session, and the sessions the per-user cap ended. */
interface OpenedSession {
  user: UserRow;
  session: SessionRow;
  token: string;
  revoked: number[];
}

/** Runs inside the transaction that deletes an account, before the row goes (see `beforeDelete`). */
export type DeletionHook = (userId: number, tx: SqlClient) => Promise<void>;

/**
 * Accounts and sessions: every rule of A1-A4 lives here, independent of the transport. Every
 * change that touches several rows (a registration and its first session, a password change and
 * the other sessions it ends, a disabled account and its sessions) is one transaction: no request,
 * on this process or another sharing the database, sees half of it. Events are emitted after the
 * commit. Ended sessions are also published to the other processes on the same database, whose
 * connections on them close as they do here.
 */
export class AccountService extends TypedEmitter<AccountEvents> {
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly #storage: Storage;
  readonly #sql: SqlClient;
  readonly #node: string;
  readonly #audit: AuditLog;
  readonly #refusals: RefusalSummary;
  readonly #settings: SettingsStore;
  readonly #config: ServerConfig;
  #limiter: LoginLimiter;
  readonly #devices: DeviceTrust;
  /** Every scrypt run goes through it (bounded concurrency and queue, priority lanes). */
  readonly #hashes: HashPool;
  readonly #slowedAccounts = new SlowedAccountGate();
  /** Registrations per address, and password re-checks per user, within `workLimits.windowMs`. */
  readonly #registrations: SlidingWindowCounter;
  readonly #passwordChecks: SlidingWindowCounter;
  readonly #deletionHooks: DeletionHook[] = [];
  readonly #logger: Logger;

  /**
   * Builds the service once the settings it needs are read: `--no-signup` stored, the device-token
   * secret loaded (made on the first start; processes sharing a database agree on the first one).
   */
  static async create(deps: AccountDeps): Promise<AccountService> {
    if (!deps.config.signupEnabled) await deps.settings.set(SIGNUP_SETTING, "false");
    return new AccountService(deps, await DeviceTrust.load(deps.settings));
  }

  private constructor(deps: AccountDeps, devices: DeviceTrust) {
    super(deps.logger);
    this.#logger = deps.logger;
    this.#storage = deps.storage;
    this.#sql = deps.storage.sql;
    this.#node = deps.node ?? randomUUID();
    this.#refusals = deps.refusals;
    this.users = new UserStore(this.#sql);
    this.sessions = new SessionStore(this.#sql, { idleMs: deps.config.sessionIdleMs });
    this.#audit = deps.audit;
    this.#settings = deps.settings;
    this.#config = deps.config;
    this.#limiter = new LoginLimiter(deps.config.loginLimits);
    this.#devices = devices;
    this.#hashes = new HashPool(deps.config.workLimits);
    this.#registrations = new SlidingWindowCounter(deps.config.workLimits.windowMs);
    this.#passwordChecks = new SlidingWindowCounter(deps.config.workLimits.windowMs);
    deps.storage.subscribe(
      SESSIONS_CHANNEL,
      (payload) => this.#revokedElsewhere(payload),
      () => this.emit("resync"),
    );
  }

  /**
   * From now on failed logins are counted in `counts` (shared by the nodes of a cluster) rather
   * than in this process's memory. Called before the server takes its first login.
   */
  shareLoginCounts(counts: LoginCounts): void {
    this.#limiter.close();
    this.#limiter = new LoginLimiter(this.#config.loginLimits, counts);
  }

  close(): void {
    this.#limiter.close();
    this.#registrations.close();
    this.#passwordChecks.close();
  }

  async signupEnabled(): Promise<boolean> {
    const stored = await this.#settings.get(SIGNUP_SETTING);
    return stored === undefined ? this.#config.signupEnabled : stored === "true";
  }

  async setSignupEnabled(enabled: boolean, actor: string): Promise<void> {
    await this.#settings.set(SIGNUP_SETTING, String(enabled));
    this.#audit.record({ action: "admin.signup", actor, detail: { enabled } });
  }

  /** Runs `hook` in every account deletion's transaction (e.g. to note whose phone books list it). */
  beforeDelete(hook: DeletionHook): void {
    this.#deletionHooks.push(hook);
  }

  /**
   * Self-service registration (A1): refused when the operator turned signup off, and past
   * `workLimits.registrationsPerAddress` from one address (TOO_MANY_ATTEMPTS, before any hash).
   * The account and its first session are one transaction; when two registrations of one name
   * race (here or on another process), the database's unique index lets exactly one through and
   * the others get USERNAME_TAKEN.
   */
  async register(
    params: { username: string; password: string; displayName?: string; deviceName?: string },
    origin: Origin,
  ): Promise<Authenticated> {
    if (!(await this.signupEnabled())) throw new ParleyError("SIGNUP_DISABLED");
    if (await this.users.byName(params.username)) throw new ParleyError("USERNAME_TAKEN");
    const refused = (reason: string) =>
      this.#refusals.refused({
        action: "register_refused",
        address: origin.address,
        reason,
        username: params.username,
      });
    const at = Date.now();
    if (!this.#registrations.take(origin.address, this.#config.workLimits.registrationsPerAddress, at)) {
      refused("rate_limited");
      throw new ParleyError("TOO_MANY_ATTEMPTS");
    }
    let opened: OpenedSession;
    try {
      const hash = await this.#hashNew(params.username, params.password, "anonymous");
      opened = await this.#sql.transaction(async (tx) => {
        const user = await this.users.in(tx).create(params.username, params.displayName ?? params.username, hash);
        if (!user) throw new ParleyError("USERNAME_TAKEN");
        return this.#writeSession(tx, user, params.deviceName);
      });
    } catch (error) {
      this.#registrations.remove(origin.address, at);
      if (isServerBusy(error)) refused("server_busy");
      throw error;
    }
    this.emit("userAdded", opened.user);
    this.#audit.record({
      action: "register",
      actor: opened.user.username,
      username: opened.user.username,
      address: origin.address,
    });
    return { ...this.#sessionOpened(opened), deviceToken: this.#devices.issue(opened.user) };
  }

  /** Creates an account for the operator (never refused for a busy hash queue). Throws USERNAME_TAKEN. */
  async createUser(username: string, password: string, displayName?: string): Promise<UserRow> {
    if (await this.users.byName(username)) throw new ParleyError("USERNAME_TAKEN");
    const hash = await this.#hashNew(username, password, "operator");
    const user = await this.users.create(username, displayName ?? username, hash);
    if (!user) throw new ParleyError("USERNAME_TAKEN");
    this.emit("userAdded", user);
    return user;
  }

  /**
   * The password's hash for a new account, in the hash pool; USERNAME_TAKEN without spending
   * scrypt when the name was taken while this waited for its turn.
   */
  #hashNew(username: string, password: string, lane: HashLane): Promise<string> {
    return this.#hashes.run(lane, async () => {
      if (await this.users.byName(username)) throw new ParleyError("USERNAME_TAKEN");
      return hashPassword(password);
    });
  }

  /**
   * A2: same error for an unknown user and a wrong password. Limited per (account, address) and
   * per address (TOO_MANY_ATTEMPTS); an account with many failures is slowed down, never locked;
   * a valid `deviceToken` (from an earlier login on this device) skips the slowdown and the queue.
   * See LoginLimiter. Every success hands out a fresh device token.
   */
  async login(
    params: { username: string; password: string; deviceName?: string; deviceToken?: string },
    origin: Origin,
  ): Promise<Authenticated> {
    const username = params.username.toLowerCase();
    const refused = (reason: string) =>
      this.#refusals.refused({ action: "login_failed", username, address: origin.address, reason });
    const known = await this.users.byName(username);
    const device = params.deviceToken && known ? this.#devices.verify(params.deviceToken, known) : undefined;
    const attempt = await this.#limiter.begin(username, origin.address, device);
    if (!attempt) {
      refused("rate_limited");
      throw new ParleyError("TOO_MANY_ATTEMPTS");
    }
    let checked: { user: UserRow | undefined; ok: boolean };
    try {
      checked = await this.#checkLogin(attempt, username, params.password);
    } catch (error) {
      await this.#limiter.cancel(attempt);
      if (isServerBusy(error)) refused("server_busy");
      throw error;
    }
    const { user, ok } = checked;
    if (!user || !ok) {
      refused(user ? "wrong_password" : "unknown_user");
      throw new ParleyError("INVALID_CREDENTIALS");
    }
    if (user.disabled) {
      refused("disabled");
      throw new ParleyError("ACCOUNT_DISABLED");
    }
    this.#checkDeviceRoom(user.id);
    const opened = await this.#sql.transaction((tx) => this.#writeSession(tx, user, params.deviceName));
    await this.#limiter.succeeded(attempt);
    this.#audit.record({ action: "login", actor: username, username, address: origin.address });
    return { ...this.#sessionOpened(opened), deviceToken: this.#devices.issue(opened.user) };
  }

  /**
   * Waits out the attempt's slowdown, then checks the password against the account as it is
   * then (a trusted device in the priority lane; slowed attempts a few at a time per account).
   */
  async #checkLogin(
    attempt: LoginAttempt,
    username: string,
    password: string,
  ): Promise<{ user: UserRow | undefined; ok: boolean }> {
    if (attempt.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, attempt.delayMs).unref());
    const check = () =>
      this.#hashes.run(attempt.trusted ? "priority" : "anonymous", async () => {
        const user = await this.users.byName(username);
        return { user, ok: await verifyPassword(password, user?.password_hash ?? (await dummyPasswordHash())) };
      });
    return attempt.delayMs > 0 ? this.#slowedAccounts.run(username, check) : check();
  }

  /**
   * A2: resume a session by token after a reconnect; the token stays the same. An expired or
   * idle session is SESSION_INVALID (and deleted); TOO_MANY_DEVICES when the user already has
   * `connectionLimits.devicesPerUser` connected devices.
   */
  async resume(token: string, origin: Origin): Promise<Authenticated> {
    const session = await this.sessions.byToken(token);
    const user = session && (await this.users.byId(session.user_id));
    if (!session || !user) throw new ParleyError("SESSION_INVALID");
    if (user.disabled) throw new ParleyError("ACCOUNT_DISABLED");
    this.#checkDeviceRoom(user.id);
    await this.#sql.transaction(async (tx) => {
      await this.sessions.in(tx).touch(session.id);
      await this.users.in(tx).touchLogin(user.id);
    });
    this.#audit.record({
      action: "resume",
      actor: user.username,
      username: user.username,
      address: origin.address,
      detail: { sessionId: session.id },
    });
    return { user, session, token };
  }

  /** A4: log out one device (the session is deleted) or all of them. */
  async logout(userId: number, sessionId: number, allDevices: boolean, origin: Origin): Promise<void> {
    const user = await this.#requireUser(userId);
    const sessionIds = allDevices ? await this.sessions.deleteAllOfUser(userId) : [sessionId];
    if (!allDevices) await this.sessions.delete(sessionId);
    this.#audit.record({
      action: allDevices ? "logout_all" : "logout",
      actor: user.username,
      username: user.username,
      address: origin.address,
      detail: { sessions: sessionIds.length },
    });
    // Other connections on an ended session (another tab that resumed the same token) go too.
    this.#revoke({
      userId,
      sessionIds,
      reason: "SESSION_REVOKED",
      ...(origin.connectionId !== undefined ? { exceptConnection: origin.connectionId } : {}),
    });
  }

  /** A3: the old password is required; every other session of the account is ended. */
  async changePassword(
    userId: number,
    sessionId: number,
    oldPassword: string,
    newPassword: string,
    origin: Origin,
  ): Promise<void> {
    const user = await this.#requireUser(userId);
    const hash = await this.#recheckPassword(user, oldPassword, () => hashPassword(newPassword));
    const revoked = await this.#sql.transaction(async (tx) => {
      await this.users.in(tx).setPasswordHash(userId, hash);
      return this.sessions.in(tx).deleteAllOfUser(userId, sessionId);
    });
    this.#audit.record({
      action: "password_changed",
      actor: user.username,
      username: user.username,
      address: origin.address,
    });
    this.#revoke({ userId, sessionIds: revoked, reason: "SESSION_REVOKED" });
  }

  async setDisplayName(userId: number, displayName: string, origin: Origin): Promise<UserRow> {
    const user = await this.#requireUser(userId);
    await this.users.setDisplayName(userId, displayName);
    this.#audit.record({
      action: "display_name_changed",
      actor: user.username,
      username: user.username,
      address: origin.address,
      detail: { from: user.display_name, to: displayName },
    });
    return this.#updated(userId);
  }

  async setUsername(userId: number, username: string, origin: Origin): Promise<UserRow> {
    const user = await this.#requireUser(userId);
    if (username === user.username) return user;
    if (!(await this.users.setUsername(userId, username))) throw new ParleyError("USERNAME_TAKEN");
    this.#audit.record({
      action: "username_changed",
      actor: username,
      username,
      address: origin.address,
      detail: { from: user.username, to: username },
    });
    return this.#updated(userId);
  }

  async setStatus(userId: number, status: SelectableStatus): Promise<UserRow> {
    await this.#requireUser(userId);
    await this.users.setStatus(userId, status);
    return (await this.users.byId(userId)) ?? this.#gone();
  }

  /**
   * A4: delete the account for good; the password is required. Every other connection of the
   * account is closed; the asking connection (`origin.connectionId`) is left to the caller.
   */
  async deleteAccount(userId: number, password: string, origin: Origin): Promise<void> {
    const user = await this.#requireUser(userId);
    await this.#recheckPassword(user, password, async () => undefined);
    const sessionIds = await this.#sql.transaction(async (tx) => {
      for (const hook of this.#deletionHooks) await hook(userId, tx);
      const ids = (await this.sessions.in(tx).ofUser(userId)).map((s) => s.id);
      await this.users.in(tx).delete(userId);
      return ids;
    });
    this.#audit.record({
      action: "account_deleted",
      actor: user.username,
      username: user.username,
      address: origin.address,
    });
    this.#revoke({
      userId,
      sessionIds,
      reason: "SESSION_REVOKED",
      ...(origin.connectionId !== undefined ? { exceptConnection: origin.connectionId } : {}),
    });
    this.emit("userRemoved", userId);
  }

  // Operator actions ------------------------------------------------------------------------------

  async setDisabled(username: string, disabled: boolean, actor: string): Promise<UserRow> {
    const user = await this.requireByName(username);
    const { updated, sessionIds } = await this.#sql.transaction(async (tx) => {
      await this.users.in(tx).setDisabled(user.id, disabled);
      const sessionIds = disabled ? await this.sessions.in(tx).deleteAllOfUser(user.id) : [];
      return { updated: (await this.users.in(tx).byId(user.id)) ?? this.#gone(), sessionIds };
    });
    this.#audit.record({ action: disabled ? "admin.disable" : "admin.enable", actor, username: user.username });
    if (disabled) {
      this.#revoke({ userId: user.id, sessionIds, reason: "ACCOUNT_DISABLED" });
      this.emit("userRemoved", user.id);
    } else {
      this.emit("userAdded", updated);
    }
    return updated;
  }

  /**
   * Grants or revokes the operator role (the web operator console). The account's devices are
   * told (`account.updated`), so an open operator page learns at once.
   */
  async setOperator(username: string, operator: boolean, actor: string): Promise<UserRow> {
    const user = await this.requireByName(username);
    if ((user.operator === 1) === operator) return user;
    await this.users.setOperator(user.id, operator);
    this.#audit.record({
      action: operator ? "admin.grant_operator" : "admin.revoke_operator",
      actor,
      username: user.username,
    });
    return this.#updated(user.id);
  }

  /** Sets a new password and ends every session of the account. */
  async resetPassword(username: string, newPassword: string, actor: string): Promise<UserRow> {
    const user = await this.requireByName(username);
    const hash = await this.#hashes.run("operator", () => hashPassword(newPassword));
    const sessionIds = await this.#sql.transaction(async (tx) => {
      await this.users.in(tx).setPasswordHash(user.id, hash);
      return this.sessions.in(tx).deleteAllOfUser(user.id);
    });
    this.#audit.record({ action: "admin.reset_password", actor, username: user.username });
    this.#revoke({ userId: user.id, sessionIds, reason: "SESSION_REVOKED" });
    return user;
  }

  async requireByName(username: string): Promise<UserRow> {
    const user = await this.users.byName(username);
    if (!user) throw new ParleyError("USER_NOT_FOUND", `No user named '${username}'.`);
    return user;
  }

  /**
   * A logged-in user's password re-check (change password, delete account), then `then` in the
   * same hash slot: WRONG_PASSWORD for a wrong one; TOO_MANY_ATTEMPTS, before any hash, past
   * `workLimits.passwordChecksPerUser` checks in the window (right or wrong: each costs scrypt).
   */
  async #recheckPassword<T>(user: UserRow, password: string, then: () => Promise<T>): Promise<T> {
    const key = String(user.id);
    const at = Date.now();
    if (!this.#passwordChecks.take(key, this.#config.workLimits.passwordChecksPerUser, at)) {
      throw new ParleyError("TOO_MANY_ATTEMPTS");
    }
    try {
      return await this.#hashes.run("priority", async () => {
        if (!(await verifyPassword(password, user.password_hash))) throw new ParleyError("WRONG_PASSWORD");
        return then();
      });
    } catch (error) {
      if (isServerBusy(error)) this.#passwordChecks.remove(key, at);
      throw error;
    }
  }

  async #requireUser(userId: number): Promise<UserRow> {
    return (await this.users.byId(userId)) ?? this.#gone();
  }

  /** The account was deleted meanwhile: its session is no more. */
  #gone(): never {
    throw new ParleyError("SESSION_INVALID");
  }

  async #updated(userId: number): Promise<UserRow> {
    const row = (await this.users.byId(userId)) ?? this.#gone();
    this.emit("userUpdated", row);
    return row;
  }

  /**
   * The writes of a new session for a device that just proved who it is, inside `tx`: sessions in
   * use count as used now (so the cap ends a forgotten one rather than an open one), the new one,
   * the last login, and beyond `maxSessionsPerUser` the least recently used sessions deleted.
   */
  async #writeSession(tx: SqlClient, user: UserRow, deviceName: string | undefined): Promise<OpenedSession> {
    const sessions = this.sessions.in(tx);
    const users = this.users.in(tx);
    await sessions.touch(...this.#connectedSessions(user.id));
    const { token, session } = await sessions.create(user.id, deviceName ?? "device", this.#config.sessionTtlMs);
    await users.touchLogin(user.id);
    const revoked = await sessions.trimUser(user.id, session.id, this.#config.maxSessionsPerUser);
    return { user: (await users.byId(user.id)) ?? user, session, token, revoked };
  }

  /** After the commit of a new session: the sessions the cap ended are audited and their connections closed. */
  #sessionOpened({ user, session, token, revoked }: OpenedSession): Authenticated {
    if (revoked.length > 0) {
      this.#audit.record({
        action: "session_capped",
        actor: user.username,
        username: user.username,
        detail: { revoked: revoked.length, max: this.#config.maxSessionsPerUser },
      });
      this.#revoke({ userId: user.id, sessionIds: revoked, reason: "SESSION_REVOKED" });
    }
    return { user, session, token };
  }

  /** Sessions ended: connections on them close here, and on every other process sharing the database. */
  #revoke(event: AccountEvents["sessionsRevoked"][0]): void {
    if (event.sessionIds.length === 0) return;
    this.emit("sessionsRevoked", event);
    const message: RevocationMessage = {
      node: this.#node,
      userId: event.userId,
      sessionIds: event.sessionIds,
      reason: event.reason,
    };
    this.#storage.publish(SESSIONS_CHANNEL, JSON.stringify(message)).catch((error: unknown) => {
      // The other processes find out at their next sweep (their sessions are gone from the database).
      this.#logger.warn({ err: error }, "could not tell the other server processes of ended sessions");
    });
  }

  #revokedElsewhere(payload: string): void {
    let message: RevocationMessage;
    try {
      message = JSON.parse(payload) as RevocationMessage;
    } catch {
      return;
    }
    if (message.node === this.#node || !Array.isArray(message.sessionIds)) return;
    this.emit("sessionsRevoked", { userId: message.userId, sessionIds: message.sessionIds, reason: message.reason });
  }

  // Session upkeep -------------------------------------------------------------------------------

  /** Presence tells which sessions each user's connected devices use (one entry per device). */
  setConnectedSessionsProvider(provider: (userId: number) => readonly number[]): void {
    this.#connectedSessions = provider;
  }

  #connectedSessions: (userId: number) => readonly number[] = () => [];

  #checkDeviceRoom(userId: number): void {
    const limit = this.#config.connectionLimits.devicesPerUser;
    if (this.#connectedSessions(userId).length >= limit) {
      throw new ParleyError("TOO_MANY_DEVICES", `This account may be connected on at most ${limit} devices at once.`);
    }
  }

  /**
   * Deletes every expired and idle session, and ends the connections still using one
   * (SESSION_EXPIRED). Resolves with how many were deleted.
   */
  async expireSessions(): Promise<number> {
    const ended = await this.sessions.purgeExpired();
    const byUser = new Map<number, number[]>();
    for (const { id, user_id } of ended) byUser.set(user_id, [...(byUser.get(user_id) ?? []), id]);
    for (const [userId, sessionIds] of byUser) {
      this.#revoke({ userId, sessionIds, reason: "SESSION_EXPIRED" });
    }
    return ended.length;
  }
}

function isServerBusy(error: unknown): boolean {
  return error instanceof ParleyError && error.code === "SERVER_BUSY";
}
