import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CONFERENCE_MAX_LIMIT } from "@parley/protocol";
import {
  DEFAULT_CONFIG,
  DEFAULT_TURN_TTL_SECONDS,
  dataPaths,
  METRICS_EXPOSURES,
  migrateToPostgres,
  parsePortRange,
  SERVER_VERSION,
  sendControlCommand,
  startServer,
  type TlsConfig,
  TlsConfigError,
  type TurnConfig,
} from "@parley/server";
import { Command, InvalidArgumentError, Option } from "commander";
import { type BotOptions, runAnswerBot, runCallBot } from "./bot/bot.js";
import { BotExit } from "./bot/exit-codes.js";
import { parseServerAddress, SERVER_ADDRESS_FORMS, ServerAddressError } from "./server-address.js";

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a positive number.");
  return n;
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number of seconds.");
  return n;
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected a whole number (0 or more).");
  return n;
}

function atLeastOne(value: string): number {
  const n = wholeNumber(value);
  if (n < 1) throw new InvalidArgumentError("expected a whole number of 1 or more.");
  return n;
}

const DAY_MS = 24 * 3600 * 1000;

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError("a port is 0-65535.");
  return port;
}

/** A path as the operator would type it: relative when below the current directory. */
function displayPath(dir: string): string {
  const relative = path.relative(process.cwd(), dir);
  return relative && !relative.startsWith("..") ? relative : dir;
}

const program = new Command()
  .name("parley")
  .description("Parley: self-hosted voice calling. Server, operator CLI and call bots.")
  .version(SERVER_VERSION)
  .enablePositionalOptions();

program
  .command("server")
  .description("Run the Parley server (signaling, health check, operator console).")
  .addOption(new Option("--host <address>", "address to listen on").env("PARLEY_HOST").default(DEFAULT_CONFIG.host))
  .addOption(
    new Option("--port <port>", "HTTP and WebSocket port (0 = any free port)")
      .env("PARLEY_PORT")
      .default(DEFAULT_CONFIG.port)
      .argParser(parsePort),
  )
  .addOption(
    new Option("--data-dir <dir>", "where the database, log file and control socket live")
      .env("PARLEY_DATA_DIR")
      .default(DEFAULT_CONFIG.dataDir),
  )
  .addOption(
    new Option(
      "--database <url>",
      "where accounts, phone books, history and the audit log are kept: postgres://USER:PASSWORD@HOST:PORT/DB (PostgreSQL, which several servers may share) or sqlite:FILE; unset, parley.db in the data dir",
    ).env("PARLEY_DATABASE_URL"),
  )
  .addOption(
    new Option(
      "--redis <url>",
      "run as one node of a cluster: redis://[USER:PASSWORD@]HOST:PORT, shared by every node (needs --database postgres://...; see docs/scaling.md)",
    ).env("PARLEY_REDIS_URL"),
  )
  .addOption(
    new Option("--media-ip <address>", "address the media relay advertises to clients and listens on")
      .env("PARLEY_MEDIA_IP")
      .default(DEFAULT_CONFIG.media.ip),
  )
  .addOption(
    new Option("--media-ports <min-max>", "UDP port range for media")
      .env("PARLEY_MEDIA_PORTS")
      .default(`${DEFAULT_CONFIG.media.portMin}-${DEFAULT_CONFIG.media.portMax}`)
      .argParser((value) => {
        try {
          return parsePortRange(value);
        } catch (error) {
          throw new InvalidArgumentError((error as Error).message);
        }
      }),
  )
  .addOption(
    new Option(
      "--media-data-plane <plane>",
      "what carries RTP once a call's media is up: native (the C addon on media threads; the default where it loads), js (the JavaScript fast plane), werift (werift's RTP stack). Where native cannot be loaded the server logs why, once, and runs js: a warning by default, an error when native is named here",
    )
      .choices(["native", "js", "werift"])
      .env("PARLEY_MEDIA_DATA_PLANE"),
  )
  .addOption(
    new Option(
      "--media-threads <n>",
      "media threads of the native data plane (the legs of one call share one; calls go to the least loaded)",
    )
      .env("PARLEY_MEDIA_THREADS")
      .default(DEFAULT_CONFIG.mediaThreads)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option(
      "--media-io-uring <on|off>",
      "batch the media threads' socket reads and sends through io_uring (a few system calls a round whatever the number of legs); off, or where the kernel or a seccomp profile refuses io_uring, they make one call per socket",
    )
      .choices(["on", "off"])
      .env("PARLEY_MEDIA_IO_URING")
      .default("on"),
  )
  .addOption(
    new Option("--opus-fec <on|off>", "ask clients' Opus encoders for in-band FEC (recovers lost packets)")
      .choices(["on", "off"])
      .env("PARLEY_OPUS_FEC")
      .default("on"),
  )
  .addOption(
    new Option("--opus-dtx <on|off>", "ask clients' Opus encoders for DTX (next to no packets during silence)")
      .choices(["on", "off"])
      .env("PARLEY_OPUS_DTX")
      .default("on"),
  )
  .addOption(
    new Option("--ring-timeout <seconds>", "seconds a call rings before it ends as no answer")
      .env("PARLEY_RING_TIMEOUT")
      .default(DEFAULT_CONFIG.ringTimeoutMs / 1000)
      .argParser(positiveNumber),
  )
  .addOption(
    new Option(
      "--call-grace <seconds>",
      "seconds a call waits for a participant whose connection dropped to come back (0: not at all)",
    )
      .env("PARLEY_CALL_GRACE")
      .default(DEFAULT_CONFIG.callGraceMs / 1000)
      .argParser(nonNegative),
  )
  .addOption(
    new Option(
      "--history-alive-interval <seconds>",
      "seconds between the marks calls in progress leave in the history (what a crash may lose of a call's duration)",
    )
      .env("PARLEY_HISTORY_ALIVE_INTERVAL")
      .default(DEFAULT_CONFIG.historyAliveIntervalMs / 1000)
      .argParser(positiveNumber),
  )
  .addOption(
    new Option("--max-conference <n>", `most participants in one call (2-${CONFERENCE_MAX_LIMIT})`)
      .env("PARLEY_MAX_CONFERENCE")
      .default(DEFAULT_CONFIG.maxConferenceSize)
      .argParser((value) => {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 2 || n > CONFERENCE_MAX_LIMIT) {
          throw new InvalidArgumentError(`must be a whole number from 2 to ${CONFERENCE_MAX_LIMIT}`);
        }
        return n;
      }),
  )
  .addOption(
    new Option("--web-root <dir>", "directory of the built web client served at /")
      .env("PARLEY_WEB_ROOT")
      .default(fileURLToPath(new URL("../../web/dist", import.meta.url))),
  )
  .addOption(new Option("--no-signup", "turn self-registration off (operators create accounts)"))
  .addOption(
    new Option("--allowed-origin <origin...>", "extra browser origins allowed to open the WebSocket").env(
      "PARLEY_ALLOWED_ORIGINS",
    ),
  )
  .addOption(
    new Option("--log-level <level>", "log level")
      .choices(["trace", "debug", "info", "warn", "error"])
      .env("PARLEY_LOG_LEVEL")
      .default(DEFAULT_CONFIG.logLevel),
  )
  .addOption(
    new Option(
      "--metrics <exposure>",
      "who may read GET /metrics (Prometheus): off, local (loopback clients only) or token (--metrics-token)",
    )
      .choices(METRICS_EXPOSURES)
      .env("PARLEY_METRICS")
      .default(DEFAULT_CONFIG.metrics.exposure),
  )
  .addOption(
    new Option("--metrics-token <token>", "bearer token for --metrics token (16+ characters)").env(
      "PARLEY_METRICS_TOKEN",
    ),
  )
  .addOption(
    new Option(
      "--trust-proxy <cidrs>",
      "reverse proxies (CIDR or address, comma-separated) whose Forwarded / X-Forwarded-For headers name the client",
    ).env("PARLEY_TRUST_PROXY"),
  )
  .addOption(
    new Option("--max-connections <n>", "open signaling connections in all")
      .env("PARLEY_MAX_CONNECTIONS")
      .default(DEFAULT_CONFIG.connectionLimits.max)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option("--max-connections-per-address <n>", "open signaling connections from one client address")
      .env("PARLEY_MAX_CONNECTIONS_PER_ADDRESS")
      .default(DEFAULT_CONFIG.connectionLimits.perAddress)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option("--login-timeout <seconds>", "seconds a connection may stay without logging in")
      .env("PARLEY_LOGIN_TIMEOUT")
      .default(DEFAULT_CONFIG.connectionLimits.loginTimeoutMs / 1000)
      .argParser(positiveNumber),
  )
  .addOption(
    new Option("--max-devices-per-user <n>", "devices one user may have connected at once")
      .env("PARLEY_MAX_DEVICES_PER_USER")
      .default(DEFAULT_CONFIG.connectionLimits.devicesPerUser)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option(
      "--anonymous-rate <n>",
      "messages and new connections per second from clients not logged in, server-wide (bursts of twice that); beyond, they wait",
    )
      .env("PARLEY_ANONYMOUS_RATE")
      .default(DEFAULT_CONFIG.connectionLimits.anonymousPerSecond)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option("--max-sessions-per-user <n>", "sessions one user may keep (the oldest is ended beyond it)")
      .env("PARLEY_MAX_SESSIONS_PER_USER")
      .default(DEFAULT_CONFIG.maxSessionsPerUser)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option("--session-days <days>", "absolute lifetime of a session, in days")
      .env("PARLEY_SESSION_DAYS")
      .default(DEFAULT_CONFIG.sessionTtlMs / DAY_MS)
      .argParser(positiveNumber),
  )
  .addOption(
    new Option("--session-idle-days <days>", "a session unused this many days ends (0: never)")
      .env("PARLEY_SESSION_IDLE_DAYS")
      .default(DEFAULT_CONFIG.sessionIdleMs / DAY_MS)
      .argParser(nonNegative),
  )
  .addOption(
    new Option("--hash-concurrency <n>", "password hashes (scrypt, 128 MiB each) computed at once (1-3)")
      .env("PARLEY_HASH_CONCURRENCY")
      .default(DEFAULT_CONFIG.workLimits.hashConcurrency)
      .argParser((value) => {
        const n = atLeastOne(value);
        if (n > 3) throw new InvalidArgumentError("at most 3: each hash holds 128 MiB and a core while it runs.");
        return n;
      }),
  )
  .addOption(
    new Option("--max-calls-per-user <n>", "live calls one user may be in at once, held ones included")
      .env("PARLEY_MAX_CALLS_PER_USER")
      .default(DEFAULT_CONFIG.maxCallsPerUser)
      .argParser(atLeastOne),
  )
  .addOption(
    new Option("--max-media-legs <n>", "media legs at once (0: the port range less a tenth)")
      .env("PARLEY_MAX_MEDIA_LEGS")
      .default(DEFAULT_CONFIG.maxMediaLegs)
      .argParser(wholeNumber),
  )
  .addOption(
    new Option("--retain-audit-days <days>", "days the audit log is kept (0: forever)")
      .env("PARLEY_RETAIN_AUDIT_DAYS")
      .default(DEFAULT_CONFIG.retention.auditDays)
      .argParser(wholeNumber),
  )
  .addOption(
    new Option("--retain-history-days <days>", "days call history is kept (0: forever)")
      .env("PARLEY_RETAIN_HISTORY_DAYS")
      .default(DEFAULT_CONFIG.retention.historyDays)
      .argParser(wholeNumber),
  )
  .addOption(
    new Option("--tls-cert <file>", "PEM certificate (chain allowed): serve HTTPS and WSS; re-read on SIGHUP").env(
      "PARLEY_TLS_CERT",
    ),
  )
  .addOption(new Option("--tls-key <file>", "PEM private key of --tls-cert").env("PARLEY_TLS_KEY"))
  .addOption(
    new Option(
      "--self-signed",
      "serve HTTPS and WSS with a self-signed certificate made in the data dir on the first start",
    ).env("PARLEY_SELF_SIGNED"),
  )
  .addOption(
    new Option("--http-redirect-port <port>", "with HTTPS: a plain HTTP port that redirects to the HTTPS address")
      .env("PARLEY_HTTP_REDIRECT_PORT")
      .argParser(parsePort),
  )
  .addOption(
    new Option(
      "--turn-url <url...>",
      "TURN server(s) for clients whose network blocks UDP, e.g. turns:parley.example:5349?transport=tcp",
    ).env("PARLEY_TURN_URL"),
  )
  .addOption(
    new Option(
      "--turn-secret <secret>",
      "coturn's static-auth-secret (use-auth-secret): signs clients' TURN credentials",
    ).env("PARLEY_TURN_SECRET"),
  )
  .addOption(
    new Option("--turn-ttl <seconds>", "lifetime of the TURN credentials handed to clients")
      .env("PARLEY_TURN_TTL")
      .default(DEFAULT_TURN_TTL_SECONDS)
      .argParser(atLeastOne),
  )
  .addOption(new Option("--quiet", "log to the data dir's log file only, not stdout"))
  .addOption(
    new Option("--console <mode>", "operator console on stdin: auto (when stdin is a terminal), on, off")
      .choices(["auto", "on", "off"])
      .default("auto"),
  )
  .action(async (opts) => {
    const consoleOn = opts.console === "on" || (opts.console === "auto" && process.stdin.isTTY === true);
    const allowed: string[] =
      typeof opts.allowedOrigin === "string" ? opts.allowedOrigin.split(",") : (opts.allowedOrigin ?? []);
    const tls = tlsOption(opts);
    if (opts.httpRedirectPort !== undefined && !tls) {
      console.error("parley: cannot start: --http-redirect-port needs HTTPS (--tls-cert/--tls-key or --self-signed)");
      process.exit(2);
    }
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer({
        host: opts.host,
        port: opts.port,
        dataDir: opts.dataDir,
        database: opts.database,
        redis: opts.redis,
        signupEnabled: opts.signup !== false,
        media: {
          ip: opts.mediaIp,
          ...(typeof opts.mediaPorts === "string" ? parsePortRange(opts.mediaPorts) : opts.mediaPorts),
        },
        mediaDataPlane: opts.mediaDataPlane,
        mediaThreads: Number(opts.mediaThreads),
        mediaIoUring: opts.mediaIoUring !== "off",
        opusFec: opts.opusFec === "on",
        opusDtx: opts.opusDtx === "on",
        ringTimeoutMs: opts.ringTimeout * 1000,
        callGraceMs: opts.callGrace * 1000,
        historyAliveIntervalMs: opts.historyAliveInterval * 1000,
        maxConferenceSize: opts.maxConference,
        webRoot: opts.webRoot,
        allowedOrigins: allowed,
        logLevel: opts.logLevel,
        logToStdout: !opts.quiet,
        metrics: { exposure: opts.metrics, token: opts.metricsToken },
        trustProxy: typeof opts.trustProxy === "string" ? opts.trustProxy.split(",").map((s: string) => s.trim()) : [],
        connectionLimits: {
          max: opts.maxConnections,
          perAddress: opts.maxConnectionsPerAddress,
          loginTimeoutMs: opts.loginTimeout * 1000,
          devicesPerUser: opts.maxDevicesPerUser,
          anonymousPerSecond: opts.anonymousRate,
        },
        maxSessionsPerUser: opts.maxSessionsPerUser,
        sessionTtlMs: opts.sessionDays * DAY_MS,
        sessionIdleMs: opts.sessionIdleDays * DAY_MS,
        maxCallsPerUser: opts.maxCallsPerUser,
        workLimits: { ...DEFAULT_CONFIG.workLimits, hashConcurrency: opts.hashConcurrency },
        maxMediaLegs: opts.maxMediaLegs,
        retention: { auditDays: opts.retainAuditDays, historyDays: opts.retainHistoryDays },
        tls,
        httpRedirectPort: opts.httpRedirectPort,
        turn: turnOption(opts),
        ...(consoleOn ? { consoleInput: process.stdin, consoleOutput: process.stdout } : {}),
      });
    } catch (error) {
      console.error(`parley: cannot start: ${(error as Error).message}`);
      process.exit(error instanceof TlsConfigError ? 2 : 1);
    }
    process.stdout.write(
      [
        `Parley ${SERVER_VERSION} listening on ${server.httpUrl} (signaling ${server.signalingUrl})`,
        ...startBannerAccess(server),
        server.storage.kind === "postgres"
          ? `Data: PostgreSQL ${server.storage.location} (log and control socket in ${server.config.dataDir})`
          : `Data: ${server.config.dataDir}`,
        consoleOn
          ? "Operator console: type 'help'."
          : `Operator commands: parley admin --data-dir ${displayPath(server.config.dataDir)} help`,
        "",
      ].join("\n"),
    );
    let signals = 0;
    const stop = () => {
      signals += 1;
      if (signals > 1) process.exit(1);
      void server.close();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    await server.closed;
    process.exit(0);
  });

/** --tls-cert/--tls-key or --self-signed; a half or contradictory setting stops the start (exit 2). */
function tlsOption(opts: { tlsCert?: string; tlsKey?: string; selfSigned?: boolean }): TlsConfig | undefined {
  const fail = (message: string): never => {
    console.error(`parley: cannot start: ${message}`);
    process.exit(2);
  };
  if (opts.selfSigned && (opts.tlsCert || opts.tlsKey))
    fail("--self-signed and --tls-cert/--tls-key exclude each other");
  if (opts.selfSigned) return { selfSigned: true };
  if (opts.tlsCert && !opts.tlsKey) fail(`--tls-cert ${opts.tlsCert} needs --tls-key (PARLEY_TLS_KEY) too`);
  if (opts.tlsKey && !opts.tlsCert) fail(`--tls-key ${opts.tlsKey} needs --tls-cert (PARLEY_TLS_CERT) too`);
  return opts.tlsCert && opts.tlsKey ? { certFile: opts.tlsCert, keyFile: opts.tlsKey } : undefined;
}

/** --turn-url/--turn-secret: both or neither (the server checks the values themselves). */
function turnOption(opts: {
  turnUrl?: string | string[];
  turnSecret?: string;
  turnTtl: number;
}): TurnConfig | undefined {
  const urls = (typeof opts.turnUrl === "string" ? opts.turnUrl.split(",") : (opts.turnUrl ?? []))
    .map((url) => url.trim())
    .filter((url) => url !== "");
  if (urls.length === 0 && opts.turnSecret === undefined) return undefined;
  if (opts.turnSecret === undefined) {
    console.error(
      "parley: cannot start: --turn-url needs --turn-secret (PARLEY_TURN_SECRET), coturn's static-auth-secret",
    );
    process.exit(2);
  }
  return { urls, secret: opts.turnSecret, ttlSeconds: opts.turnTtl };
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/**
 * Banner lines on how to reach the server: the certificate's fingerprint with HTTPS, the addresses
 * other machines open, and, without HTTPS beyond loopback, that their browsers will need it.
 */
function startBannerAccess(server: Awaited<ReturnType<typeof startServer>>): string[] {
  const lines: string[] = [];
  const { host } = server.config;
  const scheme = server.tls ? "https" : "http";
  if (server.tls) lines.push(`Certificate SHA-256 fingerprint: ${server.tls.fingerprint256}`);
  if (server.redirectPort !== undefined) lines.push(`Plain HTTP on port ${server.redirectPort} redirects to HTTPS.`);
  if (isLoopbackHost(host)) return lines;
  const addresses: string[] = [];
  if (host === "0.0.0.0" || host === "::") {
    for (const list of Object.values(os.networkInterfaces())) {
      for (const address of list ?? []) {
        if (address.family === "IPv4" && !address.internal) addresses.push(address.address);
      }
    }
  } else {
    addresses.push(host);
  }
  for (const address of addresses) {
    const shown = address.includes(":") ? `[${address}]` : address;
    lines.push(`From other machines: ${scheme}://${shown}:${server.port}`);
  }
  if (!server.tls) {
    lines.push(
      "Browsers on other machines need HTTPS for the microphone: start with --self-signed, or --tls-cert FILE --tls-key FILE.",
    );
  }
  return lines;
}

program
  .command("admin")
  .description("Run an operator command against the running server (try: parley admin help).")
  .addOption(
    new Option("--data-dir <dir>", "the server's data dir").env("PARLEY_DATA_DIR").default(DEFAULT_CONFIG.dataDir),
  )
  .argument("<command...>", "the command and its arguments, e.g. users add alice --password secret123")
  .allowUnknownOption(true)
  .passThroughOptions(true)
  .addHelpText(
    "after",
    "\nWithout a running server:\n  parley admin migrate-to-postgres --from DATA_DIR --to postgres://USER:PASSWORD@HOST/DB\n    copies an SQLite installation into an empty PostgreSQL database (one transaction, row counts checked)",
  )
  .action(async (words: string[], opts: { dataDir: string }) => {
    if (words[0] === "migrate-to-postgres") await migrateCommand(words.slice(1), opts.dataDir);
    const socket = dataPaths(path.resolve(opts.dataDir)).controlSocket;
    // The server runs elsewhere: a backup's file is named from here.
    if (words[0] === "backup" && words[1] && !words[1].startsWith("--")) words[1] = path.resolve(words[1]);
    try {
      const result = await sendControlCommand(socket, words);
      (result.exitCode === 0 ? process.stdout : process.stderr).write(`${result.output}\n`);
      process.exit(result.exitCode);
    } catch (error) {
      console.error(
        `parley admin: cannot reach the server through ${socket} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Is it running with this --data-dir?`,
      );
      process.exit(3);
    }
  });

/**
 * `parley admin migrate-to-postgres --from DATA_DIR --to URL`: runs here, not in the server (which
 * must be stopped). --from defaults to --data-dir, --to to PARLEY_DATABASE_URL.
 */
async function migrateCommand(args: string[], dataDir: string): Promise<never> {
  const usage = "usage: parley admin migrate-to-postgres --from DATA_DIR --to postgres://USER:PASSWORD@HOST/DB";
  let from = dataDir;
  let to = process.env.PARLEY_DATABASE_URL;
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const value = inline ?? args[++i];
    if (value === undefined || (name !== "--from" && name !== "--to")) {
      console.error(`parley admin: ${usage}`);
      process.exit(2);
    }
    if (name === "--from") from = value;
    else to = value;
  }
  if (!to) {
    console.error(`parley admin: --to is missing; ${usage}`);
    process.exit(2);
  }
  try {
    const result = await migrateToPostgres(path.resolve(from), to);
    const rows = Object.entries(result.tables);
    const total = rows.reduce((sum, [, n]) => sum + n, 0);
    process.stdout.write(
      [
        `Copied ${result.from} into ${result.to}: ${total} rows, counts checked table by table.`,
        ...rows.map(([table, n]) => `  ${table.padEnd(18)} ${n}`),
        `Start the server with --database (PARLEY_DATABASE_URL) set to that URL.`,
        "",
      ].join("\n"),
    );
    process.exit(0);
  } catch (error) {
    console.error(`parley admin: migrate-to-postgres failed: ${(error as Error).message}`);
    process.exit(1);
  }
}

/** --server: one of the forms users write (see server-address.ts). */
function serverAddress(value: string) {
  try {
    return parseServerAddress(value);
  } catch (error) {
    if (error instanceof ServerAddressError) {
      throw new InvalidArgumentError(`${error.problem}. Accepted: ${SERVER_ADDRESS_FORMS}.`);
    }
    throw error;
  }
}

/** --ca: the file's PEM text, once it is known to hold a certificate. */
function caFile(file: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new InvalidArgumentError(`cannot read ${file} (${(error as Error).message.split(",")[0]}).`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new InvalidArgumentError(`${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----).`);
  }
  return pem;
}

/** Options shared by `parley call` and `parley answer`. */
function botCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .addOption(
      new Option("--server <address>", `the server: ${SERVER_ADDRESS_FORMS}`)
        .default(parseServerAddress("ws://localhost:8080/ws"), "ws://localhost:8080/ws")
        .argParser(serverAddress)
        .makeOptionMandatory(),
    )
    .option(
      "--ca <file>",
      "PEM certificate(s) to trust for https:// and wss:// (e.g. a --self-signed server's tls-cert.pem)",
      caFile,
    )
    .addOption(
      new Option(
        "--insecure",
        "do not check the server's certificate (https:// and wss://); prints a warning",
      ).conflicts("ca"),
    )
    .requiredOption("--user <name>", "username")
    .requiredOption("--password <password>", "password")
    .option("--register", "create the account first (log in if it exists)")
    .option("--play <wav>", "WAV file sent as the microphone, looped (silence if absent)")
    .option("--record <wav>", "write what is heard to this WAV file (48 kHz mono)")
    .option(
      "--duration <seconds>",
      "talk this long after the answer (from when audio connected), then hang up",
      positiveNumber,
    )
    .option(
      "--bind <address>",
      "local address for signaling and media (default: the system's route to the server, and its address for media)",
    )
    .option("--trace <file>", "append every signaling message received to this file (JSON lines)")
    .option("--hold-at <seconds>", "put the call on hold this long after the answer", nonNegative)
    .option("--resume-at <seconds>", "take the call off hold this long after the answer", nonNegative)
    .option("--add <name>", "invite this user into the call (a conference), at --add-at")
    .option("--add-at <seconds>", "when to invite --add, this long after the answer (default 0)", nonNegative)
    .addHelpText(
      "after",
      "\nScripted times (--duration, --hold-at, --resume-at, --add-at, --switch-at) count from when the call's audio connected: normally the answer.",
    );
}

function botOptions(opts: Record<string, unknown>): BotOptions {
  return {
    server: opts.server as BotOptions["server"],
    user: opts.user as string,
    password: opts.password as string,
    register: opts.register === true,
    ...(opts.bind ? { bind: opts.bind as string } : {}),
    ...(opts.ca ? { ca: opts.ca as string } : {}),
    ...(opts.insecure ? { insecure: true } : {}),
    ...(opts.play ? { play: opts.play as string } : {}),
    ...(opts.record ? { record: opts.record as string } : {}),
    ...(opts.duration !== undefined ? { duration: opts.duration as number } : {}),
    ...(opts.wait !== undefined ? { wait: opts.wait as number } : {}),
    ...(opts.trace ? { trace: opts.trace as string } : {}),
    ...(opts.holdAt !== undefined ? { holdAt: opts.holdAt as number } : {}),
    ...(opts.resumeAt !== undefined ? { resumeAt: opts.resumeAt as number } : {}),
    ...(opts.answerWaiting ? { answerWaiting: true } : {}),
    ...(opts.switchAt !== undefined ? { switchAt: opts.switchAt as number } : {}),
    ...(opts.add ? { add: { username: opts.add as string, at: (opts.addAt as number | undefined) ?? 0 } } : {}),
    log: (line) => process.stderr.write(`parley: ${line}\n`),
  };
}

async function runBot(run: () => Promise<number>): Promise<never> {
  try {
    process.exit(await run());
  } catch (error) {
    console.error(`parley: ${(error as Error).message}`);
    process.exit(BotExit.ERROR);
  }
}

botCommand("call", "Call a user, play a WAV as the microphone and record what comes back.")
  .requiredOption("--to <names>", "who to call: a username, or several separated by commas (a group call)")
  .addHelpText(
    "after",
    "\nExit codes: 0 answered and hung up, 1 error, 2 declined, 3 busy, 4 no answer, 5 unreachable, 6 cancelled, 7 failed.",
  )
  .action((opts) => {
    const to = (opts.to as string)
      .split(",")
      .map((name) => name.trim())
      .filter(Boolean);
    return runBot(() => runCallBot({ ...botOptions(opts), to: to.length === 1 ? to[0]! : to }));
  });

botCommand("answer", "Wait for a call, answer it, play a WAV as the microphone and record what comes in.")
  .option("--wait <seconds>", "give up when no call arrives in this time", positiveNumber)
  .option("--answer-waiting", "answer a second call that rings meanwhile (the first goes on hold)")
  .option("--switch-at <seconds>", "this long after answering the waiting call, switch back to the first", nonNegative)
  .addHelpText("after", "\nExit codes: 0 answered and hung up, 1 error, 7 failed or no call arrived in time.")
  .action((opts) => runBot(() => runAnswerBot(botOptions(opts))));

await program.parseAsync(process.argv);
