import { ParleyError } from "@parley/protocol";
import type { Logger } from "pino";
import { DEMO_PASSWORD, type OperatorService } from "./operator-service.js";
import { formatDuration, table } from "./table.js";

export { DEMO_PASSWORD, DEMO_USERS } from "./operator-service.js";

export interface CommandResult {
  output: string;
  /** 0 success, 1 the command failed, 2 usage error. */
  exitCode: number;
}

const HELP = `Operator commands:
  help                                   this list
  users                                  every account: status, devices, last login
  users add NAME --password PW [--display-name NAME] [--operator]
                                         create an account (--operator: with the operator role)
  operator grant NAME | operator revoke NAME
                                         give or take the operator role (the web console at /admin)
  who                                    connected clients (devices) with their addresses
  user NAME                              one user: status, devices, connected since, last login, addresses
  kick NAME                              disconnect every device of NAME (they may log in again)
  disable NAME | enable NAME             lock or unlock an account (disabling disconnects it)
  reset-password NAME [--password PW]    set a new password (random if none given); ends all sessions
  logs [N] [--user NAME] [--action A] [--since ISO] [--until ISO]
                                         the last N audit-log entries (default 20)
  calls                                  live calls: participants, state, duration, media legs
                                         (in a cluster: every node's, with the node that owns it)
  hangup CALL                            end a live call (its id or a unique prefix), on any node
  stats                                  uptime, users, connections, calls, messages, errors, memory
  nodes                                  the nodes of the cluster (--redis): media address, start, load
  signup [on|off]                        show or set whether people may register themselves
  demo-users                             create the demo accounts (password '${DEMO_PASSWORD}')
  backup FILE                            copy the live database to FILE (a new file, owner-only)
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
 * O3: the text form of every operator command, for the stdin console and the control socket
 * (`parley admin`): parses words, calls the one structured operation in OperatorService (which
 * the web operator page's requests call too), and formats the result as text.
 */
export class AdminCommands {
  readonly #operator: OperatorService;
  readonly #logger: Logger;
  readonly #shutdown: () => void;

  constructor(deps: { operator: OperatorService; logger: Logger; shutdown: () => void }) {
    this.#operator = deps.operator;
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
    const op = this.#operator;
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
      case "kick": {
        const kicked = await op.kick(name(), actor);
        return `kicked ${kicked.username} (${kicked.devices} device(s))`;
      }
      case "disable":
      case "enable": {
        const user = await op.setDisabled(name(), command === "disable", actor);
        return `${user.username} ${command}d`;
      }
      case "operator": {
        const [verb, who] = args.positionals;
        if ((verb !== "grant" && verb !== "revoke") || !who)
          throw new UsageError("operator grant NAME | operator revoke NAME");
        const user = await op.setOperator(who, verb === "grant", actor);
        return `${user.username} is ${user.operator ? "an operator" : "not an operator"}`;
      }
      case "reset-password": {
        const given = args.options.get("password");
        const reset = await op.resetPassword(name(), given, actor);
        return reset.generated
          ? `password of ${reset.username} reset to: ${reset.generated}`
          : `password of ${reset.username} reset`;
      }
      case "logs":
        return this.#logs(args);
      case "stats":
        return this.#statsText();
      case "nodes":
        return this.#nodesText();
      case "signup": {
        const value = args.positionals[0];
        if (value === undefined) return `signup is ${(await op.server()).signupEnabled ? "on" : "off"}`;
        if (value !== "on" && value !== "off") throw new UsageError("signup [on|off]");
        return `signup is ${(await op.setSignup(value === "on", actor)) ? "on" : "off"}`;
      }
      case "demo-users": {
        const created = await op.demoUsers(actor);
        return created.length
          ? `created ${created.join(", ")} (password '${DEMO_PASSWORD}')`
          : "demo users already exist";
      }
      case "calls":
        return this.#liveCalls();
      case "hangup": {
        const id = args.positionals[0];
        if (!id) throw new UsageError("hangup CALL (a call id or a unique prefix, see 'calls')");
        const call = await op.endCall(id, actor);
        return `ended call ${call.callId} (${call.participants.join(", ")})`;
      }
      case "backup":
        return this.#backupText(args, actor);
      case "shutdown":
        op.shutdown(actor, this.#shutdown);
        return "shutting down";
      default:
        throw new UsageError(`unknown command '${command}'; try 'help'`);
    }
  }

  async #addUser(args: Parsed, actor: string): Promise<string> {
    const username = args.positionals[1]?.toLowerCase();
    const password = args.options.get("password");
    if (!username || !password) throw new UsageError("users add NAME --password PW [--display-name NAME] [--operator]");
    const operator = args.options.get("operator") === "true";
    const user = await this.#operator.addUser(
      { username, password, displayName: args.options.get("display-name"), operator },
      actor,
    );
    return `created ${user.username} (id ${user.id})${operator ? " as an operator" : ""}`;
  }

  async #users(): Promise<string> {
    const users = (await this.#operator.users(Number.POSITIVE_INFINITY)).sort((a, b) =>
      a.username.localeCompare(b.username),
    );
    // In a cluster: devices on every node, and which nodes (short ids, as `nodes` lists them).
    const clustered = users.some((u) => u.nodes !== undefined);
    const rows = users.map((u) => [
      u.id,
      u.username,
      u.displayName,
      u.disabled ? "disabled" : u.status,
      u.nodes ? u.nodes.reduce((sum, n) => sum + n.devices, 0) : u.devices.length,
      ...(clustered ? [u.nodes?.map((n) => `${shortNode(n.node)}:${n.devices}`).join(" ") || null] : []),
      u.lastLoginAt,
      u.operator ? "operator" : null,
    ]);
    const headers = ["ID", "USERNAME", "DISPLAY NAME", "STATUS", "DEVICES", ...(clustered ? ["NODES"] : [])];
    return `${table([...headers, "LAST LOGIN", "ROLE"], rows)}\n${rows.length} account(s)`;
  }

  #nodesText(): string {
    const nodes = this.#operator.nodes();
    if (!nodes) return "not in a cluster (start with --redis to run several nodes as one)";
    const now = Date.now();
    const rows = nodes.map((n) => [
      `${n.id}${n.self ? " *" : ""}`,
      n.mediaAddress,
      n.startedAt,
      `${formatDuration(now - Date.parse(n.heartbeatAt))} ago`,
      n.load.users,
      n.load.calls,
      n.load.legs,
    ]);
    return `${table(["NODE (* this one)", "MEDIA ADDRESS", "STARTED", "HEARTBEAT", "USERS", "CALLS", "MEDIA LEGS"], rows)}\n${rows.length} live node(s)`;
  }

  async #who(): Promise<string> {
    const now = Date.now();
    const rows = (await this.#operator.users()).flatMap((u) =>
      u.devices.map((d) => [
        d.connectionId,
        u.username,
        d.deviceName,
        d.address,
        d.connectedAt,
        formatDuration(now - Date.parse(d.connectedAt)),
      ]),
    );
    return `${table(["CONN", "USER", "DEVICE", "ADDRESS", "CONNECTED SINCE", "FOR"], rows)}\n${rows.length} device(s) connected`;
  }

  async #user(username: string): Promise<string> {
    const user = await this.#operator.user(username);
    const lines = [
      `user:          ${user.username} (id ${user.id})${user.operator ? ", operator" : ""}`,
      `display name:  ${user.displayName}`,
      `status:        ${user.disabled ? "disabled" : user.status}`,
      `created:       ${user.createdAt}`,
      `last login:    ${user.lastLoginAt ?? "never"}`,
      `sessions:      ${user.sessions}`,
      `current call:  ${user.callId ?? "none"}`,
      `devices:       ${user.devices.length} connected${user.nodes ? " to this node" : ""}`,
      ...user.devices.map(
        (d) => `  - conn ${d.connectionId} "${d.deviceName}" from ${d.address}, connected since ${d.connectedAt}`,
      ),
      ...(user.nodes
        ? [`nodes:         ${user.nodes.map((n) => `${n.node} (${n.devices} device(s))`).join(", ") || "none"}`]
        : []),
    ];
    return lines.join("\n");
  }

  async #liveCalls(): Promise<string> {
    const { calls, unanswered } = await this.#operator.allCalls();
    // In a cluster: the node that owns each call (short ids, as `nodes` lists them).
    const clustered = calls.some((c) => c.node !== undefined) || unanswered.length > 0;
    const rows = calls.map((c) => [
      c.callId,
      ...(clustered ? [c.node ? shortNode(c.node) : null] : []),
      c.state,
      c.participants.join(" "),
      c.state === "ringing" ? `ringing ${formatDuration(c.durationMs)}` : formatDuration(c.durationMs),
      c.legs
        .map((l) => `${l.username ?? l.connectionId} ${l.state} ${l.packetsIn}/${l.packetsOut}${quality(l)}`)
        .join(", ") || "-",
    ]);
    const headers = [
      "CALL",
      ...(clustered ? ["NODE"] : []),
      "STATE",
      "PARTICIPANTS",
      "DURATION",
      "MEDIA LEGS (in/out packets, lost, jitter, RTT)",
    ];
    const missing = unanswered.map((node) => `\nnode ${node} did not answer in time: its calls are not listed`);
    return `${table(headers, rows)}\n${rows.length} live call(s)${missing.join("")}`;
  }

  async #logs(args: Parsed): Promise<string> {
    const limit = args.positionals[0] ? Number.parseInt(args.positionals[0], 10) : 20;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw new UsageError("logs [N] [--user NAME] [--action A] [--since ISO] [--until ISO]");
    const entries = await this.#operator.audit({
      limit,
      username: args.options.get("user"),
      action: args.options.get("action"),
      since: args.options.get("since"),
      until: args.options.get("until"),
    });
    return table(
      ["TIME", "ACTION", "ACTOR", "USER", "ADDRESS", "DETAIL"],
      entries.map((e) => [e.at, e.action, e.actor, e.username, e.address, e.detail ? JSON.stringify(e.detail) : null]),
    );
  }

  async #backupText(args: Parsed, actor: string): Promise<string> {
    const file = args.positionals[0];
    if (!file || args.positionals.length > 1) throw new UsageError("backup FILE (a new file; never overwritten)");
    const result = await this.#operator.backup(file, actor);
    const rows = Object.entries(result.tables).map(([name, n]) => [name, n]);
    return `backup written to ${result.file} (${result.bytes} bytes)\n${table(["TABLE", "ROWS"], rows)}`;
  }

  async #statsText(): Promise<string> {
    const s = await this.#operator.server();
    const counters = this.#operator.counters();
    const nodes = this.#operator.nodes();
    const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    const errors = [...counters.errors].map(([code, n]) => `${code}=${n}`).join(" ") || "none";
    return [
      `version:             ${s.version}`,
      `uptime:              ${formatDuration(s.uptimeSeconds * 1000)}`,
      `accounts:            ${s.accounts}`,
      `users online:        ${s.usersOnline}`,
      `devices connected:   ${counters.devices}`,
      `connections open:    ${s.connections}`,
      `connections total:   ${counters.connectionsTotal}`,
      `live calls:          ${s.calls}`,
      `media legs:          ${s.mediaLegs}`,
      `packets relayed:     ${s.packetsRelayed} (${s.packetsPerSecond}/s)`,
      `messages in / out:   ${counters.messagesIn} / ${counters.messagesOut}`,
      `errors sent:         ${errors}`,
      `signup:              ${s.signupEnabled ? "on" : "off"}`,
      ...(nodes ? [`cluster nodes:       ${nodes.length} live (see 'nodes')`] : []),
      `cpu:                 ${s.cpuPercent}%`,
      `memory (rss / heap): ${mib(s.rssBytes)} / ${mib(s.heapUsedBytes)}`,
    ].join("\n");
  }
}

/** A node id's first 8 characters: enough to tell the nodes of one cluster apart in a table. */
function shortNode(id: string): string {
  return id.slice(0, 8);
}

/** " lost 0, jitter 2.1 ms, rtt 1.0 ms" for what is measured. */
function quality(leg: { packetsLost: number | null; jitterMs: number | null; roundTripMs: number | null }): string {
  const parts = [
    leg.packetsLost === null ? null : `lost ${leg.packetsLost}`,
    leg.jitterMs === null ? null : `jitter ${leg.jitterMs} ms`,
    leg.roundTripMs === null ? null : `rtt ${leg.roundTripMs} ms`,
  ].filter((p) => p !== null);
  return parts.length ? ` (${parts.join(", ")})` : "";
}
