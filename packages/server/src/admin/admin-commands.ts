import { randomBytes } from "node:crypto";
import { PASSWORD_MAX, PASSWORD_MIN, ParleyError, USERNAME_PATTERN } from "@parley/protocol";
import type { Logger } from "pino";
import type { AccountService } from "../accounts/account-service.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { CallService } from "../calls/call-service.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { ServerStats } from "../signaling/server-stats.js";
import { formatDuration, table } from "./table.js";

export interface CommandResult {
  output: string;
  /** 0 success, 1 the command failed, 2 usage error. */
  exitCode: number;
}

/** The seeds' test users (A6). */
export const DEMO_USERS = [
  { username: "yann", displayName: "Yann" },
  { username: "tugdual", displayName: "Tugdual" },
  { username: "johndoe", displayName: "John Doe" },
  { username: "alice", displayName: "Alice" },
  { username: "bob", displayName: "Bob" },
] as const;
export const DEMO_PASSWORD = "parley-demo";

const HELP = `Operator commands:
  help                                   this list
  users                                  every account: status, devices, last login
  users add NAME --password PW [--display-name NAME]
                                         create an account
  who                                    connected clients (devices) with their addresses
  user NAME                              one user: status, devices, connected since, last login, addresses
  kick NAME                              disconnect every device of NAME (they may log in again)
  disable NAME | enable NAME             lock or unlock an account (disabling disconnects it)
  reset-password NAME [--password PW]    set a new password (random if none given); ends all sessions
  logs [N] [--user NAME] [--action A] [--since ISO] [--until ISO]
                                         the last N audit-log entries (default 20)
  calls                                  live calls: participants, state, duration, media legs
  hangup CALL                            end a live call (its id or a unique prefix)
  stats                                  uptime, users, connections, calls, messages, errors, memory
  signup [on|off]                        show or set whether people may register themselves
  demo-users                             create the demo accounts (password '${DEMO_PASSWORD}')
  shutdown                               stop the server cleanly`;

interface Parsed {
  positionals: string[];
  options: Map<string, string>;
}

function parse(args: string[]): Parsed {
  const positionals: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith("--")) {
      const [name, inline] = arg.slice(2).split("=", 2) as [string, string | undefined];
      if (inline !== undefined) options.set(name, inline);
      else if (i + 1 < args.length && !args[i + 1]!.startsWith("--")) options.set(name, args[++i]!);
      else options.set(name, "true");
    } else {
      positionals.push(arg);
    }
  }
  return { positionals, options };
}

class UsageError extends Error {}

/**
 * O3: every operator command, written once. The stdin console, the control socket
 * (`parley admin`) and, later, the web operator page all call `run()`.
 */
export class AdminCommands {
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #audit: AuditLog;
  readonly #stats: ServerStats;
  readonly #calls: CallService;
  readonly #logger: Logger;
  readonly #shutdown: () => void;

  constructor(deps: {
    accounts: AccountService;
    presence: PresenceService;
    audit: AuditLog;
    stats: ServerStats;
    calls: CallService;
    logger: Logger;
    shutdown: () => void;
  }) {
    this.#calls = deps.calls;
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#audit = deps.audit;
    this.#stats = deps.stats;
    this.#logger = deps.logger;
    this.#shutdown = deps.shutdown;
  }

  /** Runs one command given as words; `actor` names who ran it in the audit log. */
  async run(words: string[], actor = "operator"): Promise<CommandResult> {
    const [command = "help", ...rest] = words;
    const args = parse(rest);
    this.#logger.info({ command, actor }, "operator command");
    try {
      const output = await this.#dispatch(command, args, actor);
      return { output, exitCode: 0 };
    } catch (error) {
      if (error instanceof UsageError) return { output: `usage: ${error.message}`, exitCode: 2 };
      if (error instanceof ParleyError) return { output: `error ${error.code}: ${error.message}`, exitCode: 1 };
      this.#logger.error({ err: error, command }, "operator command failed");
      return { output: `error: ${(error as Error).message}`, exitCode: 1 };
    }
  }

  async #dispatch(command: string, args: Parsed, actor: string): Promise<string> {
    const name = () => {
      const value = args.positionals[0];
      if (!value) throw new UsageError(`${command} NAME`);
      return value.toLowerCase();
    };
    switch (command) {
      case "help":
        return HELP;
      case "users":
        if (args.positionals[0] === "add") return this.#addUser(args, actor);
        return this.#users();
      case "who":
        return this.#who();
      case "user":
        return this.#user(name());
      case "kick":
        return this.#kick(name(), actor);
      case "disable":
      case "enable": {
        const user = this.#accounts.setDisabled(name(), command === "disable", actor);
        return `${user.username} ${command}d`;
      }
      case "reset-password":
        return this.#resetPassword(name(), args.options.get("password"), actor);
      case "logs":
        return this.#logs(args);
      case "stats":
        return this.#statsText();
      case "signup":
        return this.#signup(args.positionals[0], actor);
      case "demo-users":
        return this.#demoUsers(actor);
      case "calls":
        return this.#liveCalls();
      case "hangup": {
        const id = args.positionals[0];
        if (!id) throw new UsageError("hangup CALL (a call id or a unique prefix, see 'calls')");
        const call = this.#calls.endByOperator(id, actor);
        const who = [...call.members.values()].map((m) => m.party.username).join(", ");
        return `ended call ${call.id} (${who})`;
      }
      case "shutdown":
        this.#audit.record({ action: "admin.shutdown", actor });
        setImmediate(this.#shutdown);
        return "shutting down";
      default:
        throw new UsageError(`unknown command '${command}'; try 'help'`);
    }
  }

  async #addUser(args: Parsed, actor: string): Promise<string> {
    const username = args.positionals[1]?.toLowerCase();
    const password = args.options.get("password");
    if (!username || !password) throw new UsageError("users add NAME --password PW [--display-name NAME]");
    if (!USERNAME_PATTERN.test(username)) throw new ParleyError("INVALID_USERNAME");
    checkPassword(password);
    const user = await this.#accounts.createUser(username, password, args.options.get("display-name"));
    this.#audit.record({ action: "admin.user_added", actor, username: user.username });
    return `created ${user.username} (id ${user.id})`;
  }

  #users(): string {
    const rows = this.#accounts.users
      .all()
      .map((u) => [
        u.id,
        u.username,
        u.display_name,
        u.disabled ? "disabled" : this.#presence.statusOf(u),
        this.#presence.devicesOf(u.id).length,
        u.last_login_at,
      ]);
    return `${table(["ID", "USERNAME", "DISPLAY NAME", "STATUS", "DEVICES", "LAST LOGIN"], rows)}\n${rows.length} account(s)`;
  }

  #who(): string {
    const now = Date.now();
    const rows = this.#presence.allDevices().map((d) => {
      const user = this.#accounts.users.byId(d.userId);
      return [
        d.id,
        user?.username,
        d.deviceName,
        d.address,
        d.connectedAt.toISOString(),
        formatDuration(now - d.connectedAt.getTime()),
      ];
    });
    return `${table(["CONN", "USER", "DEVICE", "ADDRESS", "CONNECTED SINCE", "FOR"], rows)}\n${rows.length} device(s) connected`;
  }

  #user(username: string): string {
    const user = this.#accounts.requireByName(username);
    const devices = this.#presence.devicesOf(user.id);
    const lines = [
      `user:          ${user.username} (id ${user.id})`,
      `display name:  ${user.display_name}`,
      `status:        ${user.disabled ? "disabled" : this.#presence.statusOf(user)} (chosen: ${user.status})`,
      `created:       ${user.created_at}`,
      `last login:    ${user.last_login_at ?? "never"}`,
      `sessions:      ${this.#accounts.sessions.ofUser(user.id).length}`,
      `devices:       ${devices.length} connected`,
      ...devices.map(
        (d) => `  - conn ${d.id} "${d.deviceName}" from ${d.address}, connected since ${d.connectedAt.toISOString()}`,
      ),
    ];
    return lines.join("\n");
  }

  #liveCalls(): string {
    const now = Date.now();
    const rows = this.#calls
      .liveCalls()
      .map((c) => [
        c.id,
        c.state,
        c.conference ? "conference" : "1:1",
        c.participants
          .map(
            (p) =>
              `${p.username}${p.state === "connected" || p.state === "calling" ? "" : ` (${p.state})`}${p.held ? " (held)" : ""}`,
          )
          .join(", "),
        c.answeredAt
          ? formatDuration(now - c.answeredAt.getTime())
          : `ringing ${formatDuration(now - c.createdAt.getTime())}`,
        c.legs.map((l) => `${l.state} ${l.packetsIn}/${l.packetsOut}`).join(", ") || "-",
      ]);
    return `${table(["CALL", "STATE", "KIND", "PARTICIPANTS", "DURATION", "MEDIA LEGS (in/out packets)"], rows)}\n${rows.length} live call(s)`;
  }

  #kick(username: string, actor: string): string {
    const user = this.#accounts.requireByName(username);
    const devices = this.#presence.devicesOf(user.id);
    for (const device of devices) device.close("KICKED");
    this.#audit.record({ action: "admin.kick", actor, username: user.username, detail: { devices: devices.length } });
    return `kicked ${user.username} (${devices.length} device(s))`;
  }

  async #resetPassword(username: string, given: string | undefined, actor: string): Promise<string> {
    const password = given ?? randomBytes(9).toString("base64url");
    checkPassword(password);
    const user = await this.#accounts.resetPassword(username, password, actor);
    return given ? `password of ${user.username} reset` : `password of ${user.username} reset to: ${password}`;
  }

  #logs(args: Parsed): string {
    const limit = args.positionals[0] ? Number.parseInt(args.positionals[0], 10) : 20;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw new UsageError("logs [N] [--user NAME] [--action A] [--since ISO] [--until ISO]");
    const entries = this.#audit.query({
      limit,
      username: args.options.get("user")?.toLowerCase(),
      action: args.options.get("action"),
      since: args.options.get("since"),
      until: args.options.get("until"),
    });
    return table(
      ["TIME", "ACTION", "ACTOR", "USER", "ADDRESS", "DETAIL"],
      entries.map((e) => [e.at, e.action, e.actor, e.username, e.address, e.detail ? JSON.stringify(e.detail) : null]),
    );
  }

  #statsText(): string {
    const memory = process.memoryUsage();
    const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    const errors = [...this.#stats.errors].map(([code, n]) => `${code}=${n}`).join(" ") || "none";
    return [
      `uptime:              ${formatDuration(Date.now() - this.#stats.startedAt.getTime())}`,
      `accounts:            ${this.#accounts.users.count()}`,
      `users online:        ${this.#presence.onlineUserCount()}`,
      `devices connected:   ${this.#presence.allDevices().length}`,
      `connections total:   ${this.#stats.connectionsTotal}`,
      `live calls:          ${this.#calls.liveCalls().length}`,
      `messages in / out:   ${this.#stats.messagesIn} / ${this.#stats.messagesOut}`,
      `errors sent:         ${errors}`,
      `signup:              ${this.#accounts.signupEnabled ? "on" : "off"}`,
      `memory (rss / heap): ${mib(memory.rss)} / ${mib(memory.heapUsed)}`,
    ].join("\n");
  }

  #signup(value: string | undefined, actor: string): string {
    if (value === undefined) return `signup is ${this.#accounts.signupEnabled ? "on" : "off"}`;
    if (value !== "on" && value !== "off") throw new UsageError("signup [on|off]");
    this.#accounts.setSignupEnabled(value === "on", actor);
    return `signup is ${value}`;
  }

  async #demoUsers(actor: string): Promise<string> {
    const created: string[] = [];
    for (const demo of DEMO_USERS) {
      if (this.#accounts.users.byName(demo.username)) continue;
      await this.#accounts.createUser(demo.username, DEMO_PASSWORD, demo.displayName);
      created.push(demo.username);
    }
    this.#audit.record({ action: "admin.demo_users", actor, detail: { created } });
    return created.length ? `created ${created.join(", ")} (password '${DEMO_PASSWORD}')` : "demo users already exist";
  }
}

function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) throw new ParleyError("INVALID_PASSWORD");
}
