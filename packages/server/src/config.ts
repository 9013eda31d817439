import path from "node:path";

export interface LoginLimits {
  /** Failed logins allowed for one account from one address within `windowMs`. */
  perAccountAddress: number;
  /** Failed logins allowed for one account from all addresses together. */
  perAccount: number;
  /** Failed logins allowed from one client address across all accounts. */
  perAddress: number;
  windowMs: number;
}

export interface ServerConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  dataDir: string;
  /**
   * Whether anyone may create an account. `false` (the `--no-signup` flag) always wins at start;
   * otherwise the operator's last `signup on|off`, which is stored, applies.
   */
  signupEnabled: boolean;
  /** Extra WebSocket origins allowed besides the server's own (e.g. a dev server). */
  allowedOrigins: string[];
  sessionTtlMs: number;
  loginLimits: LoginLimits;
  /** Per-connection token bucket: `burst` messages at once, refilled at `perSecond`. */
  messageRate: { burst: number; perSecond: number; maxStrikes: number };
  helloTimeoutMs: number;
  /** WebSocket ping interval; a connection that misses one pong is dropped. */
  heartbeatMs: number;
  logLevel: string;
  /** Also write logs to stdout (the file in the data dir is always written). */
  logToStdout: boolean;
}

export const DEFAULT_CONFIG: ServerConfig = {
  host: "0.0.0.0",
  port: 8080,
  dataDir: "./data",
  signupEnabled: true,
  allowedOrigins: [],
  sessionTtlMs: 30 * 24 * 3600 * 1000,
  loginLimits: { perAccountAddress: 10, perAccount: 100, perAddress: 30, windowMs: 15 * 60 * 1000 },
  messageRate: { burst: 40, perSecond: 20, maxStrikes: 50 },
  helloTimeoutMs: 10_000,
  heartbeatMs: 10_000,
  logLevel: "info",
  logToStdout: true,
};

export function resolveConfig(partial: Partial<ServerConfig> = {}): ServerConfig {
  const config = { ...DEFAULT_CONFIG, ...partial };
  config.dataDir = path.resolve(config.dataDir);
  return config;
}

/** Files the server keeps in its data dir. */
export function dataPaths(dataDir: string) {
  return {
    database: path.join(dataDir, "parley.db"),
    log: path.join(dataDir, "parley.log"),
    controlSocket: path.join(dataDir, "parley.sock"),
  };
}
