import { ParleyError, type SelectableStatus } from "@parley/protocol";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/audit-log.js";
import type { RefusalSummary } from "../audit/refusal-summary.js";
import type { ServerConfig } from "../config.js";
import type { Database } from "../storage/database.js";
import type { SettingsStore } from "../storage/settings-store.js";
import { TypedEmitter } from "../util/typed-emitter.js";
import { DeviceTrust } from "./device-trust.js";
import { type HashLane, HashPool } from "./hash-pool.js";
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
  /** Sent just before an account is deleted, while everything pointing at it still exists. */
  userDeleting: [number];
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

/** Accounts and sessions: every rule of A1-A4 lives here, independent of the transport. */
export class AccountService extends TypedEmitter<AccountEvents> {
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly #db: Database;
  readonly #audit: AuditLog;
  readonly #refusals: RefusalSummary;
  readonly #settings: SettingsStore;
  readonly #config: ServerConfig;
  readonly #limiter: LoginLimiter;
  readonly #devices: DeviceTrust;
  /** Every scrypt run goes through it (bounded concurrency and queue, priority lanes). */
  readonly #hashes: HashPool;
  readonly #slowedAccounts = new SlowedAccountGate();
  /** Registrations per address, and password re-checks per user, within `workLimits.windowMs`. */
  readonly #registrations: SlidingWindowCounter;
  readonly #passwordChecks: SlidingWindowCounter;

  constructor(deps: {
    db: Database;
    audit: AuditLog;
    refusals: RefusalSummary;
    settings: SettingsStore;
    config: ServerConfig;
    logger: Logger;
  }) {
    super(deps.logger);
    this.#db = deps.db;
    this.#refusals = deps.refusals;
    this.users = new UserStore(deps.db);
    this.sessions = new SessionStore(deps.db, { idleMs: deps.config.sessionIdleMs });
    this.#audit = deps.audit;
    this.#settings = deps.settings;
    this.#config = deps.config;
    this.#limiter = new LoginLimiter(deps.config.loginLimits);
    this.#devices = new DeviceTrust(deps.settings);
    this.#hashes = new HashPool(deps.config.workLimits);
    this.#registrations = new SlidingWindowCounter(deps.config.workLimits.windowMs);
    this.#passwordChecks = new SlidingWindowCounter(deps.config.workLimits.windowMs);
    if (!deps.config.signupEnabled) this.#settings.set(SIGNUP_SETTING, "false");
  }

  close(): void {
    this.#limiter.close();
    this.#registrations.close();
    this.#passwordChecks.close();
  }

  get signupEnabled(): boolean {
    const stored = this.#settings.get(SIGNUP_SETTING);
    return stored === undefined ? this.#config.signupEnabled : stored === "true";
  }

  setSignupEnabled(enabled: boolean, actor: string): void {
    this.#settings.set(SIGNUP_SETTING, String(enabled));
    this.#audit.record({ action: "admin.signup", actor, detail: { enabled } });
  }

  /**
   * Self-service registration (A1): refused when the operator turned signup off, and past
   * `workLimits.registrationsPerAddress` from one address (TOO_MANY_ATTEMPTS, before any hash).
   */
  async register(
    params: { username: string; password: string; displayName?: string; deviceName?: string },
    origin: Origin,
  ): Promise<Authenticated> {
    if (!this.signupEnabled) throw new ParleyError("SIGNUP_DISABLED");
    if (this.users.byName(params.username)) throw new ParleyError("USERNAME_TAKEN");
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
    let user: UserRow;
    try {
      user = await this.#createUser(params.username, params.password, params.displayName, "anonymous");
    } catch (error) {
      this.#registrations.remove(origin.address, at);
      if (isServerBusy(error)) refused("server_busy");
      throw error;
    }
    this.#audit.record({ action: "register", actor: user.username, username: user.username, address: origin.address });
    return { ...this.#openSession(user, params.deviceName), deviceToken: this.#devices.issue(user) };
  }

  /** Creates an account for the operator (never refused for a busy hash queue). Throws USERNAME_TAKEN. */
  createUser(username: string, password: string, displayName?: string): Promise<UserRow> {
    return this.#createUser(username, password, displayName, "operator");
  }

  async #createUser(
    username: string,
    password: string,
    displayName: string | undefined,
    lane: HashLane,
  ): Promise<UserRow> {
    if (this.users.byName(username)) throw new ParleyError("USERNAME_TAKEN");
    const hash = await this.#hashes.run(lane, () => hashPassword(password));
    const user = this.users.create(username, displayName ?? username, hash);
    if (!user) throw new ParleyError("USERNAME_TAKEN");
    this.emit("userAdded", user);
    return user;
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
    const known = this.users.byName(username);
    const device = params.deviceToken && known ? this.#devices.verify(params.deviceToken, known) : undefined;
    const attempt = this.#limiter.begin(username, origin.address, device);
    if (!attempt) {
      refused("rate_limited");
      throw new ParleyError("TOO_MANY_ATTEMPTS");
    }
    let checked: { user: UserRow | undefined; ok: boolean };
    try {
      checked = await this.#checkLogin(attempt, username, params.password);
    } catch (error) {
      this.#limiter.cancel(attempt);
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
    this.#limiter.succeeded(attempt);
    this.#audit.record({ action: "login", actor: username, username, address: origin.address });
    return { ...this.#openSession(user, params.deviceName), deviceToken: this.#devices.issue(user) };
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
        const user = this.users.byName(username);
        return { user, ok: await verifyPassword(password, user?.password_hash ?? (await dummyPasswordHash())) };
      });
    return attempt.delayMs > 0 ? this.#slowedAccounts.run(username, check) : check();
  }

  /**
   * A2: resume a session by token after a reconnect; the token stays the same. An expired or
   * idle session is SESSION_INVALID (and deleted); TOO_MANY_DEVICES when the user already has
   * `connectionLimits.devicesPerUser` connected devices.
   */
  resume(token: string, origin: Origin): Authenticated {
    const session = this.sessions.byToken(token);
    const user = session && this.users.byId(session.user_id);
    if (!session || !user) throw new ParleyError("SESSION_INVALID");
    if (user.disabled) throw new ParleyError("ACCOUNT_DISABLED");
    this.#checkDeviceRoom(user.id);
    this.sessions.touch(session.id);
    this.users.touchLogin(user.id);
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
  logout(userId: number, sessionId: number, allDevices: boolean, origin: Origin): void {
    const user = this.#requireUser(userId);
    const sessionIds = allDevices ? this.sessions.deleteAllOfUser(userId) : [sessionId];
    if (!allDevices) this.sessions.delete(sessionId);
    this.#audit.record({
      action: allDevices ? "logout_all" : "logout",
      actor: user.username,
      username: user.username,
      address: origin.address,
      detail: { sessions: sessionIds.length },
    });
    // Other connections on an ended session (another tab that resumed the same token) go too.
    this.emit("sessionsRevoked", {
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
    const user = this.#requireUser(userId);
    const hash = await this.#recheckPassword(user, oldPassword, () => hashPassword(newPassword));
    const revoked = this.#db.transaction(() => {
      this.users.setPasswordHash(userId, hash);
      return this.sessions.deleteAllOfUser(userId, sessionId);
    })();
    this.#audit.record({
      action: "password_changed",
      actor: user.username,
      username: user.username,
      address: origin.address,
    });
    this.emit("sessionsRevoked", { userId, sessionIds: revoked, reason: "SESSION_REVOKED" });
  }

  setDisplayName(userId: number, displayName: string, origin: Origin): UserRow {
    const user = this.#requireUser(userId);
    this.users.setDisplayName(userId, displayName);
    this.#audit.record({
      action: "display_name_changed",
      actor: user.username,
      username: user.username,
      address: origin.address,
      detail: { from: user.display_name, to: displayName },
    });
    return this.#updated(userId);
  }

  setUsername(userId: number, username: string, origin: Origin): UserRow {
    const user = this.#requireUser(userId);
    if (username === user.username) return user;
    if (!this.users.setUsername(userId, username)) throw new ParleyError("USERNAME_TAKEN");
    this.#audit.record({
      action: "username_changed",
      actor: username,
      username,
      address: origin.address,
      detail: { from: user.username, to: username },
    });
    return this.#updated(userId);
  }

  setStatus(userId: number, status: SelectableStatus): UserRow {
    this.#requireUser(userId);
    this.users.setStatus(userId, status);
    return this.users.byId(userId)!;
  }

  /**
   * A4: delete the account for good; the password is required. Every other connection of the
   * account is closed; the asking connection (`origin.connectionId`) is left to the caller.
   */
  async deleteAccount(userId: number, password: string, origin: Origin): Promise<void> {
    const user = this.#requireUser(userId);
    await this.#recheckPassword(user, password, async () => undefined);
    const sessionIds = this.sessions.ofUser(userId).map((s) => s.id);
    this.emit("userDeleting", userId);
    this.users.delete(userId);
    this.#audit.record({
      action: "account_deleted",
      actor: user.username,
      username: user.username,
      address: origin.address,
    });
    this.emit("sessionsRevoked", {
      userId,
      sessionIds,
      reason: "SESSION_REVOKED",
      ...(origin.connectionId !== undefined ? { exceptConnection: origin.connectionId } : {}),
    });
    this.emit("userRemoved", userId);
  }

  // Operator actions ------------------------------------------------------------------------------

  setDisabled(username: string, disabled: boolean, actor: string): UserRow {
    const user = this.requireByName(username);
    this.users.setDisabled(user.id, disabled);
    this.#audit.record({ action: disabled ? "admin.disable" : "admin.enable", actor, username: user.username });
    const updated = this.users.byId(user.id)!;
    if (disabled) {
      const sessionIds = this.sessions.deleteAllOfUser(user.id);
      this.emit("sessionsRevoked", { userId: user.id, sessionIds, reason: "ACCOUNT_DISABLED" });
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
  setOperator(username: string, operator: boolean, actor: string): UserRow {
    const user = this.requireByName(username);
    if ((user.operator === 1) === operator) return user;
    this.users.setOperator(user.id, operator);
    this.#audit.record({
      action: operator ? "admin.grant_operator" : "admin.revoke_operator",
      actor,
      username: user.username,
    });
    return this.#updated(user.id);
  }

  /** Sets a new password and ends every session of the account. */
  async resetPassword(username: string, newPassword: string, actor: string): Promise<UserRow> {
    const user = this.requireByName(username);
    const hash = await this.#hashes.run("operator", () => hashPassword(newPassword));
    const sessionIds = this.#db.transaction(() => {
      this.users.setPasswordHash(user.id, hash);
      return this.sessions.deleteAllOfUser(user.id);
    })();
    this.#audit.record({ action: "admin.reset_password", actor, username: user.username });
    this.emit("sessionsRevoked", { userId: user.id, sessionIds, reason: "SESSION_REVOKED" });
    return user;
  }

  requireByName(username: string): UserRow {
    const user = this.users.byName(username);
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

  #requireUser(userId: number): UserRow {
    const user = this.users.byId(userId);
    if (!user) throw new ParleyError("SESSION_INVALID");
    return user;
  }

  #updated(userId: number): UserRow {
    const row = this.users.byId(userId)!;
    this.emit("userUpdated", row);
    return row;
  }

  /**
   * A new session for a device that just proved who it is: refused with TOO_MANY_DEVICES when the
   * user has no room for another connected device; beyond `maxSessionsPerUser` the least recently
   * used sessions are revoked (their connections closed).
   */
  #openSession(user: UserRow, deviceName: string | undefined): Authenticated {
    this.#checkDeviceRoom(user.id);
    // Sessions in use count as used now, so the cap ends a forgotten one rather than an open one.
    this.sessions.touch(...this.#connectedSessions(user.id));
    const { token, session } = this.sessions.create(user.id, deviceName ?? "device", this.#config.sessionTtlMs);
    this.users.touchLogin(user.id);
    const revoked = this.sessions.trimUser(user.id, session.id, this.#config.maxSessionsPerUser);
    if (revoked.length > 0) {
      this.#audit.record({
        action: "session_capped",
        actor: user.username,
        username: user.username,
        detail: { revoked: revoked.length, max: this.#config.maxSessionsPerUser },
      });
      this.emit("sessionsRevoked", { userId: user.id, sessionIds: revoked, reason: "SESSION_REVOKED" });
    }
    return { user: this.users.byId(user.id)!, session, token };
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
   * (SESSION_EXPIRED). Returns how many were deleted.
   */
  expireSessions(): number {
    const ended = this.sessions.purgeExpired();
    const byUser = new Map<number, number[]>();
    for (const { id, user_id } of ended) byUser.set(user_id, [...(byUser.get(user_id) ?? []), id]);
    for (const [userId, sessionIds] of byUser) {
      this.emit("sessionsRevoked", { userId, sessionIds, reason: "SESSION_EXPIRED" });
    }
    return ended.length;
  }
}

function isServerBusy(error: unknown): boolean {
  return error instanceof ParleyError && error.code === "SERVER_BUSY";
}
