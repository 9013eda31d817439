import os from "node:os";
import path from "node:path";
import { parseRedisUrl } from "./cluster/redis-url.js";
import { compileTrustProxy } from "./http/client-address.js";
import type { TlsConfig } from "./http/tls.js";
import { DATA_PLANES, type DataPlane, parseDataPlane } from "./media/data-plane.js";
import { TURN_SECRET_MIN, type TurnConfig, turnUrlProblem } from "./media/turn-credentials.js";
import { parseDatabaseUrl } from "./storage/database-url.js";

/**
 * The media address when none is configured: the machine's first non-loopback IPv4 address
 * (reachable from the LAN and from this machine), or 127.0.0.1 when there is none.
 */
export function defaultMediaIp(): string {
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === "IPv4" && !address.internal) return address.address;
    }
  }
  return "127.0.0.1";
}

/** Parses "MIN-MAX" into a UDP port range. */
export function parsePortRange(text: string): { portMin: number; portMax: number } {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const portMin = Number(match?.[1]);
  const portMax = Number(match?.[2]);
  // werift needs at least two ports in a range.
  if (!match || portMin < 1024 || portMax > 65535 || portMin >= portMax) {
    throw new Error(`'${text}' is not a port range MIN-MAX within 1024-65535`);
  }
  return { portMin, portMax };
}

export interface LoginLimits {
  /** Failed logins allowed for one account from one address within `windowMs` (then that pair is refused). */
  perAccountAddress: number;
  /**
   * Failed logins of one account from all addresses together after which every further attempt on
   * it is slowed down (a growing delay), never refused: a stranger cannot lock the owner out.
   */
  perAccount: number;
  /** Failed logins allowed from one client address across all accounts. */
  perAddress: number;
  windowMs: number;
  /** Longest delay the account-wide slowdown puts on one attempt. */
  maxDelayMs: number;
}

/** Caps on signaling connections (file descriptors are shared with the media legs). */
export interface ConnectionLimits {
  /** Open WebSocket connections in all. */
  max: number;
  /** Open WebSocket connections from one client address (a school behind one NAT shares one). */
  perAddress: number;
  /** A connection that has not logged in this long after `hello` is closed (LOGIN_TIMEOUT). */
  loginTimeoutMs: number;
  /** Logged-in devices (connections) of one user at once; one more is refused with TOO_MANY_DEVICES. */
  devicesPerUser: number;
  /**
   * The server-wide budget for strangers: messages from connections not logged in (hello, login,
   * register, resume) plus new WebSocket connections, per second, with bursts of twice that.
   * Beyond it such work waits unread (slowed, not refused), so a flood of bad logins cannot take
   * the event loop from the media relay; logged-in users are never held by it.
   */
  anonymousPerSecond: number;
}

/** Bounds on the expensive work strangers and users can ask for. */
export interface WorkLimits {
  /** scrypt jobs running at once, and waiting beyond those; past that, SERVER_BUSY. */
  hashConcurrency: number;
  hashQueue: number;
  /** Registrations allowed from one address per `windowMs`. */
  registrationsPerAddress: number;
  /** Password re-checks (change password, delete account) allowed per user per `windowMs`. */
  passwordChecksPerUser: number;
  windowMs: number;
}

/** Retention of the audit log and of call history, in days (0 keeps them forever). */
export interface RetentionConfig {
  auditDays: number;
  historyDays: number;
}

/** Who may read `GET /metrics`. */
export const METRICS_EXPOSURES = ["off", "local", "token"] as const;
export type MetricsExposure = (typeof METRICS_EXPOSURES)[number];

export interface MetricsConfig {
  /** off: no endpoint; local: loopback clients only (the default); token: a bearer token, from anywhere. */
  exposure: MetricsExposure;
  /** Required with `token`. */
  token?: string | undefined;
}

/** Shortest metrics token accepted: guessing it must be out of reach. */
export const METRICS_TOKEN_MIN = 16;

export interface ServerConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  dataDir: string;
  /**
   * Where accounts, sessions, phone books, history, audit log and settings are kept (`--database`,
   * PARLEY_DATABASE_URL): unset, the embedded SQLite file parley.db in the data dir; `sqlite:PATH`
   * another SQLite file; `postgres://...` a PostgreSQL database, which several server processes
   * may share. The log and the control socket stay in the data dir either way.
   */
  database?: string | undefined;
  /**
   * Redis, the shared bus of a cluster (`--redis`, PARLEY_REDIS_URL): set, this server runs as one
   * node of several sharing one PostgreSQL database (`database` must be `postgres://...`): node
   * registry and heartbeats, presence across nodes (see docs/scaling.md). Unset: a single server.
   */
  redis?: string | undefined;
  /**
   * Whether anyone may create an account. `false` (the `--no-signup` flag) always wins at start;
   * otherwise the operator's last `signup on|off`, which is stored, applies.
   */
  signupEnabled: boolean;
  /** Extra WebSocket origins allowed besides the server's own (e.g. a dev server). */
  allowedOrigins: string[];
  /** Absolute lifetime of a session. */
  sessionTtlMs: number;
  /** A session unused this long ends (0: only the absolute lifetime applies). */
  sessionIdleMs: number;
  /** Sessions (logged-in devices, remembered) one user may keep; the oldest is revoked beyond it. */
  maxSessionsPerUser: number;
  loginLimits: LoginLimits;
  connectionLimits: ConnectionLimits;
  workLimits: WorkLimits;
  /**
   * Reverse proxies (CIDRs, or single addresses) whose `Forwarded` / `X-Forwarded-For` headers
   * are believed; empty: those headers are ignored and the TCP peer is the client.
   */
  trustProxy: string[];
  /** Live calls one user may take part in at once, held and ringing ones included. */
  maxCallsPerUser: number;
  /** Media legs the relay keeps at once (0: derived from the port range, with headroom). */
  maxMediaLegs: number;
  retention: RetentionConfig;
  /** Per-connection token bucket: `burst` messages at once, refilled at `perSecond`. */
  messageRate: { burst: number; perSecond: number; maxStrikes: number };
  helloTimeoutMs: number;
  /** WebSocket ping interval; a connection that misses one pong is dropped. */
  heartbeatMs: number;
  /** How long a call rings before it ends as "no answer". */
  ringTimeoutMs: number;
  /**
   * How long a call keeps a participant whose connection dropped (not a hang up, logout or close
   * by the server): their media leg stays and they may take the call back with `auth.resume`.
   * 0: a dropped connection leaves the call at once.
   */
  callGraceMs: number;
  /**
   * How often every call in progress is marked alive in the history: what a crash of the server
   * may lose of a call's duration (the call is closed as `interrupted` at the next start).
   */
  historyAliveIntervalMs: number;
  /** The most participants one call (conference) may have, the caller included. */
  maxConferenceSize: number;
  /** The address and UDP port range the media relay advertises and listens on. */
  media: { ip: string; portMin: number; portMax: number };
  /**
   * The data plane of the media relay (`--media-data-plane`, or PARLEY_MEDIA_DATA_PLANE for a
   * server started in-process). Unset: native, falling back to js where the addon cannot be
   * loaded (a warning, once); named "native": the same fallback, logged as an error.
   */
  mediaDataPlane?: DataPlane | undefined;
  /** Media threads of the native data plane (`--media-threads`); a call's legs share one. */
  mediaThreads: number;
  /** Batch the media threads' system calls through io_uring where the kernel allows (`--media-io-uring`). */
  mediaIoUring: boolean;
  /** Ask clients' Opus encoders for in-band FEC (`useinbandfec=1`): lost packets recovered from the next. */
  opusFec: boolean;
  /** Ask clients' Opus encoders for DTX (`usedtx=1`): next to no packets during silence. */
  opusDtx: boolean;
  /** Directory of the built web client served at `/`; none serves a plain notice. */
  webRoot?: string | undefined;
  logLevel: string;
  /** Also write logs to stdout (the file in the data dir is always written). */
  logToStdout: boolean;
  /** Exposure of the Prometheus endpoint `GET /metrics`. */
  metrics: MetricsConfig;
  /** HTTPS and WSS on the port: PEM files (re-read on SIGHUP), or a self-signed certificate in the data dir. */
  tls?: TlsConfig | undefined;
  /** With TLS: a plain HTTP port that redirects every request to the HTTPS address (0: any free port). */
  httpRedirectPort?: number | undefined;
  /** Relay (TURN) servers for clients whose network blocks UDP; none: clients get no ICE servers. */
  turn?: TurnConfig | undefined;
}

export const DEFAULT_CONFIG: ServerConfig = {
  host: "0.0.0.0",
  port: 8080,
  dataDir: "./data",
  signupEnabled: true,
  allowedOrigins: [],
  sessionTtlMs: 30 * 24 * 3600 * 1000,
  sessionIdleMs: 14 * 24 * 3600 * 1000,
  maxSessionsPerUser: 20,
  loginLimits: { perAccountAddress: 10, perAccount: 20, perAddress: 30, windowMs: 15 * 60 * 1000, maxDelayMs: 10_000 },
  connectionLimits: { max: 4000, perAddress: 250, loginTimeoutMs: 30_000, devicesPerUser: 10, anonymousPerSecond: 300 },
  workLimits: {
    hashConcurrency: 1,
    hashQueue: 32,
    // A class signing up on its first morning shares one NAT address: generous, since scrypt is
    // bounded by the hash pool anyway; this stops account spam, not load.
    registrationsPerAddress: 100,
    passwordChecksPerUser: 10,
    windowMs: 60 * 60 * 1000,
  },
  trustProxy: [],
  maxCallsPerUser: 4,
  maxMediaLegs: 0,
  retention: { auditDays: 365, historyDays: 0 },
  messageRate: { burst: 40, perSecond: 20, maxStrikes: 50 },
  helloTimeoutMs: 10_000,
  heartbeatMs: 5_000,
  ringTimeoutMs: 30_000,
  callGraceMs: 30_000,
  historyAliveIntervalMs: 10_000,
  maxConferenceSize: 16,
  media: { ip: defaultMediaIp(), portMin: 40000, portMax: 49999 },
  mediaThreads: os.availableParallelism(),
  mediaIoUring: true,
  opusFec: true,
  opusDtx: true,
  logLevel: "info",
  logToStdout: true,
  metrics: { exposure: "local" },
};

export function resolveConfig(partial: Partial<ServerConfig> = {}): ServerConfig {
  const config = { ...DEFAULT_CONFIG, ...partial };
  config.dataDir = path.resolve(config.dataDir);
  // A malformed --database stops the start with the accepted forms named.
  const database = parseDatabaseUrl(config.database, dataPaths(config.dataDir).database);
  if (config.redis !== undefined && config.redis.trim() === "") config.redis = undefined;
  if (config.redis !== undefined) {
    // The nodes of a cluster share their accounts, sessions and history: one SQLite file cannot.
    if (database.kind !== "postgres") {
      throw new Error(
        "--redis (PARLEY_REDIS_URL) needs --database postgres://... (the nodes of a cluster share one PostgreSQL database)",
      );
    }
    parseRedisUrl(config.redis);
  }
  const { exposure, token } = config.metrics;
  if (!METRICS_EXPOSURES.includes(exposure))
    throw new Error(`--metrics must be one of ${METRICS_EXPOSURES.join(", ")}`);
  if (exposure === "token" && (!token || token.length < METRICS_TOKEN_MIN)) {
    throw new Error(
      `--metrics token needs a --metrics-token (PARLEY_METRICS_TOKEN) of at least ${METRICS_TOKEN_MIN} characters`,
    );
  }
  // Each entry must be an address or CIDR range; a typo must not silently trust nobody (or everybody).
  config.trustProxy = config.trustProxy.map((entry) => entry.trim()).filter((entry) => entry !== "");
  compileTrustProxy(config.trustProxy);
  if (config.turn) {
    const { urls, secret, ttlSeconds } = config.turn;
    if (urls.length === 0) throw new Error("--turn-secret needs at least one --turn-url (PARLEY_TURN_URL)");
    for (const url of urls) {
      const problem = turnUrlProblem(url);
      if (problem) throw new Error(`--turn-url '${url}' is not a TURN URL: ${problem}`);
    }
    if (secret.length < TURN_SECRET_MIN)
      throw new Error(
        `--turn-url needs a --turn-secret (PARLEY_TURN_SECRET) of at least ${TURN_SECRET_MIN} characters`,
      );
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60) throw new Error("--turn-ttl must be at least 60 seconds");
  }
  if (!(config.historyAliveIntervalMs >= 100)) throw new Error("--history-alive-interval must be at least 0.1 seconds");
  if (config.maxMediaLegs === 0) config.maxMediaLegs = defaultMaxMediaLegs(config.media);
  const envPlane = process.env.PARLEY_MEDIA_DATA_PLANE;
  if (config.mediaDataPlane === undefined && envPlane) {
    const plane = parseDataPlane(envPlane);
    if (!plane) throw new Error(`PARLEY_MEDIA_DATA_PLANE must be one of ${DATA_PLANES.join(", ")} (got '${envPlane}')`);
    config.mediaDataPlane = plane;
  }
  if (!(Number.isInteger(config.mediaThreads) && config.mediaThreads >= 1)) {
    throw new Error("--media-threads must be a whole number of at least 1");
  }
  return config;
}

/**
 * The media leg cap when none is configured: one leg per port of the range, less a tenth (at
 * least 8 ports) kept free, so the cap is reached with a typed error before werift runs out of
 * ports (and other processes sharing the range still find one).
 */
export function defaultMaxMediaLegs(media: { portMin: number; portMax: number }): number {
  const ports = media.portMax - media.portMin + 1;
  return Math.max(1, ports - Math.max(8, Math.ceil(ports / 10)));
}

/** Files the server keeps in its data dir. */
export function dataPaths(dataDir: string) {
  return {
    database: path.join(dataDir, "parley.db"),
    log: path.join(dataDir, "parley.log"),
    controlSocket: path.join(dataDir, "parley.sock"),
  };
}
