import { randomUUID } from "node:crypto";
import fs from "node:fs";
import type http from "node:http";
import type https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { SIGNALING_PATH } from "@parley/protocol";
import { AccountService } from "./accounts/account-service.js";
import { SessionSweeper } from "./accounts/session-sweeper.js";
import { AdminCommands } from "./admin/admin-commands.js";
import { CallHistorySearch } from "./admin/call-history-search.js";
import { startConsole } from "./admin/console.js";
import { ControlSocket } from "./admin/control-socket.js";
import { OperatorFeed } from "./admin/operator-feed.js";
import { OperatorService } from "./admin/operator-service.js";
import { AuditLog } from "./audit/audit-log.js";
import { RefusalSummary } from "./audit/refusal-summary.js";
import { CallLiveness } from "./calls/call-liveness.js";
import { CallService } from "./calls/call-service.js";
import { AdminBus } from "./cluster/admin-bus.js";
import { CallBus } from "./cluster/call-bus.js";
import { Cluster } from "./cluster/cluster.js";
import { DirectoryBus } from "./cluster/directory-bus.js";
import { remoteConnection } from "./cluster/remote-device.js";
import { SharedLoginCounts } from "./cluster/shared-login-counts.js";
import { dataPaths, resolveConfig, type ServerConfig } from "./config.js";
import { createHttpServer } from "./http/http-server.js";
import { listenHttpsRedirect } from "./http/https-redirect.js";
import { ensureSelfSigned, loadTlsCredentials, selfSignedPaths, type TlsCredentials } from "./http/tls.js";
import { createLogger, type Logger } from "./logging/logger.js";
import { MediaRelay } from "./media/index.js";
import { MeteredCallHistoryStore } from "./metrics/metered-call-history.js";
import { Metrics } from "./metrics/metrics.js";
import { serveMetrics } from "./metrics/metrics-endpoint.js";
import { PhonebookService } from "./phonebook/phonebook-service.js";
import { PresenceService } from "./presence/presence-service.js";
import type { Services } from "./services.js";
import type { Handler } from "./signaling/handler.js";
import { HANDLERS } from "./signaling/handlers.js";
import { SignalingServer } from "./signaling/signaling-server.js";
import { ServerStats } from "./stats/server-stats.js";
import { enforceOwnerOnly, octal } from "./storage/data-dir-permissions.js";
import type { Database } from "./storage/database.js";
import { openStorage } from "./storage/open-storage.js";
import { type RetentionResult, RetentionSweeper } from "./storage/retention.js";
import { SettingsStore } from "./storage/settings-store.js";
import { SqliteStorage } from "./storage/sqlite-storage.js";
import type { Storage } from "./storage/storage.js";

export const SERVER_VERSION: string = (
  JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export interface StartOptions extends Partial<ServerConfig> {
  /** Read operator commands from this stream (the terminal's stdin) and answer on `consoleOutput`. */
  consoleInput?: NodeJS.ReadableStream;
  consoleOutput?: NodeJS.WritableStream;
}

/** A running Parley server. */
export interface ParleyServer {
  readonly config: ServerConfig;
  /** http://host:port of the HTTP listener. */
  readonly httpUrl: string;
  /** ws://host:port/ws signaling endpoint. */
  readonly signalingUrl: string;
  readonly port: number;
  /** With HTTPS: the certificate's files and SHA-256 fingerprint (the one last loaded). */
  readonly tls: { certFile: string; keyFile: string; fingerprint256: string } | undefined;
  /** The plain HTTP port that redirects to HTTPS (`httpRedirectPort`), when there is one. */
  readonly redirectPort: number | undefined;
  readonly controlSocketPath: string;
  readonly commands: AdminCommands;
  /** The structured operator operations (what the commands and the web operator page call). */
  readonly operator: OperatorService;
  readonly logger: Logger;
  /** Where the data is kept: the embedded SQLite file or a PostgreSQL database. */
  readonly storage: Storage;
  /** With SQLite, its better-sqlite3 handle (for tests that look at the file); throws with PostgreSQL. */
  readonly db: Database;
  /** With --redis: this node's membership of the cluster (node id, live nodes, presence across nodes). */
  readonly cluster: Cluster | undefined;
  /** Runs a retention pass now (it also runs at start and daily): rows deleted per kind. */
  runRetention(now?: number): Promise<RetentionResult>;
  /** Resolves once the server has shut down (after `close()`, a `shutdown` command or a signal). */
  readonly closed: Promise<void>;
  /** Clean shutdown: tells every client, closes listeners, checkpoints and closes the database. Idempotent. */
  close(): Promise<void>;
}

/** Composition root: builds every service and starts the listeners. */
export async function startServer(options: StartOptions = {}): Promise<ParleyServer> {
  const { consoleInput, consoleOutput, ...partial } = options;
  const config = resolveConfig(partial);
  const paths = dataPaths(config.dataDir);
  // Owner-only before anything opens them; what was looser is reported once the logger exists.
  const loosened = enforceOwnerOnly(
    config.dataDir,
    [
      paths.database,
      `${paths.database}-wal`,
      `${paths.database}-shm`,
      paths.log,
      paths.controlSocket,
      selfSignedPaths(config.dataDir).keyFile,
    ].map((file) => path.basename(file)),
  );
  // Certificate problems stop the start before anything is opened (TlsConfigError names the file).
  let tls: TlsCredentials | undefined;
  if (config.tls) {
    const files = "selfSigned" in config.tls ? await ensureSelfSigned(config.dataDir, config.host) : config.tls;
    tls = loadTlsCredentials(path.resolve(files.certFile), path.resolve(files.keyFile));
  }
  const logger = createLogger({ file: paths.log, level: config.logLevel, stdout: config.logToStdout });
  for (const { path: where, was, now } of loosened) {
    const message = `${where} was readable or writable by others (mode ${octal(was)}); made owner-only (${octal(now)})`;
    logger.warn({ path: where, was: octal(was), now: octal(now) }, "data dir permissions were too loose");
    process.stderr.write(`parley: warning: ${message}\n`);
  }
  let storage: Storage;
  try {
    storage = await openStorage(config.database, paths.database, { logger: logger.child({ module: "storage" }) });
  } catch (error) {
    logger.error({ err: error }, "the database could not be opened");
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    throw error;
  }
  logger.info({ database: storage.kind, location: storage.location }, "database opened");
  // Names this process to the others sharing a PostgreSQL database (ended sessions, calls in progress).
  const instanceId = randomUUID();
  const sql = storage.sql;
  const audit = new AuditLog(sql, {
    onError: (error, lost) => logger.error({ err: error, lost }, "audit entries could not be written"),
  });
  const refusals = new RefusalSummary(audit);
  const settings = new SettingsStore(sql);
  const stats = new ServerStats();
  let accounts: AccountService;
  try {
    accounts = await AccountService.create({ storage, audit, refusals, settings, config, logger, node: instanceId });
  } catch (error) {
    await storage.close();
    throw error;
  }
  const presence = new PresenceService({ accounts, logger });
  const phonebook = new PhonebookService({ sql, accounts, presence, logger: logger.child({ module: "phonebook" }) });
  // The data plane: native by default (JS where it cannot load, logged once); benchmarks and bug
  // reports compare the three (--media-data-plane; see docs/architecture.md).
  const media = new MediaRelay(config.media, logger.child({ module: "media" }), {
    ...(config.mediaDataPlane ? { dataPlane: config.mediaDataPlane } : {}),
    mediaThreads: config.mediaThreads,
    mediaIoUring: config.mediaIoUring,
    // Where the fallback is tested: the addon pointed at a file that cannot be loaded.
    nativePlaneFile: process.env.PARLEY_NATIVE_PLANE_PATH || undefined,
    opus: { fec: config.opusFec, dtx: config.opusDtx },
  });
  // Metrics read the services at scrape time; only call outcomes are counted as they happen.
  let metrics: Metrics | undefined;
  const history = new MeteredCallHistoryStore(sql, (call) => metrics?.callRecorded(call), { node: instanceId });
  // Calls in progress are marked alive in the history (see CallHistoryStore); on a shared database,
  // the calls of a process that stopped marking its own are closed by the others.
  const liveness = new CallLiveness(history, config.historyAliveIntervalMs, {
    ...(storage.kind === "postgres"
      ? {
          reclaimStale: (closed: Promise<number>) =>
            closed.then(
              (calls) => {
                if (calls > 0) logger.warn({ calls }, "calls of a stopped server process closed in the history");
              },
              (error: unknown) => logger.warn({ err: error }, "calls of stopped server processes not checked"),
            ),
        }
      : {}),
  });
  liveness.start();
  const calls = new CallService({
    accounts,
    presence,
    history,
    media,
    audit,
    logger: logger.child({ module: "calls" }),
    ringTimeoutMs: config.ringTimeoutMs,
    callGraceMs: config.callGraceMs,
    maxParticipants: config.maxConferenceSize,
    maxCallsPerUser: config.maxCallsPerUser,
    maxMediaLegs: config.maxMediaLegs,
  });
  // Purges expired and idle sessions now and periodically; closes connections whose session ends.
  const sessionSweeper = new SessionSweeper({
    accounts,
    presence,
    config,
    logger: logger.child({ module: "sessions" }),
  });
  sessionSweeper.start();
  // Deletes audit entries and call history past --retain-audit-days / --retain-history-days, now and daily.
  const retention = new RetentionSweeper({
    targets: [
      {
        name: "audit",
        days: config.retention.auditDays,
        deleteOlderThan: (before, limit) => audit.deleteOlderThan(before, limit),
      },
      {
        name: "calls",
        days: config.retention.historyDays,
        deleteOlderThan: (before, limit) => history.deleteEndedBefore(before, limit),
      },
    ],
    logger: logger.child({ module: "retention" }),
  });
  retention.start();

  // With --redis: this server joins the cluster (node registry, presence across nodes).
  let cluster: Cluster | undefined;
  // The operator's reach across the nodes (live nodes, users elsewhere, kicks on other nodes).
  let adminBus: AdminBus | undefined;
  // Accounts added, changed or removed through any node reach every node's clients.
  let directoryBus: DirectoryBus | undefined;
  if (config.redis) {
    try {
      cluster = await Cluster.join({
        nodeId: instanceId,
        url: config.redis,
        mediaAddress: config.media.ip,
        presence,
        load: () => ({ users: presence.onlineUserCount(), calls: calls.liveCalls().length, legs: media.stats().legs }),
        logger: logger.child({ module: "cluster" }),
      });
      // Failed logins counted in Redis: the limits hold for the cluster as a whole, not per node.
      accounts.shareLoginCounts(
        new SharedLoginCounts({
          redis: cluster.connections.redis,
          windowMs: config.loginLimits.windowMs,
          logger: logger.child({ module: "login-limits" }),
        }),
      );
      adminBus = await AdminBus.start({ cluster, presence, logger: logger.child({ module: "admin-bus" }) });
      directoryBus = await DirectoryBus.start({
        cluster,
        accounts,
        presence,
        logger: logger.child({ module: "directory-bus" }),
      });
    } catch (error) {
      await adminBus?.close();
      await cluster?.close();
      logger.error({ err: error }, "the cluster could not be joined");
      sessionSweeper.close();
      retention.close();
      liveness.close();
      media.close();
      accounts.close();
      await audit.close();
      await storage.close();
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
      throw error;
    }
  }

  // With --redis: calls between users on different nodes (requests and events over Redis).
  let callBus: CallBus | undefined;
  if (cluster && config.redis) {
    const joined = cluster;
    callBus = await CallBus.start({
      url: config.redis,
      node: joined.nodeId,
      registry: joined.registry,
      remotePresence: joined.presence,
      presence,
      calls,
      logger: logger.child({ module: "call-bus" }),
    }).catch(async (error: unknown) => {
      await joined.close();
      throw error;
    });
  }

  // The signaling server is built below; the operator's connection count reads it then.
  let signaling: SignalingServer | undefined;
  const connections = () => signaling?.connections.size ?? 0;
  const operator = new OperatorService({
    accounts,
    presence,
    audit,
    stats,
    calls,
    media,
    history: new CallHistorySearch(sql, () => history.flush()),
    version: SERVER_VERSION,
    connections,
    backup: (file) => storage.backup(file),
    cluster: adminBus,
  });
  const operatorFeed = new OperatorFeed({ operator, presence, logger: logger.child({ module: "operator" }) });
  metrics = new Metrics({
    presence,
    calls,
    media,
    stats,
    refusals,
    connections,
    ...(cluster ? { node: { id: cluster.nodeId, liveNodes: () => cluster.registry.liveNodes().length } } : {}),
  });
  const meter = metrics;

  const services: Services = {
    config,
    logger,
    version: SERVER_VERSION,
    instanceId,
    accounts,
    presence,
    phonebook,
    calls,
    stats,
    operator,
    operatorFeed,
    refusals,
    cluster,
    callRouter: callBus,
  };
  signaling = new SignalingServer(services);
  // Requests of devices on other nodes about calls this node owns run through the same handlers.
  callBus?.serve(async (type, params, device) =>
    (HANDLERS[type] as Handler<typeof type>)(params as never, remoteConnection(device), services),
  );
  const signalingServer = signaling;
  const httpServer = createHttpServer({
    webRoot: config.webRoot ? path.resolve(config.webRoot) : undefined,
    health: () => ({
      status: "ok",
      version: SERVER_VERSION,
      uptimeSeconds: Math.round((Date.now() - stats.startedAt.getTime()) / 1000),
      connections: signalingServer.connections.size,
    }),
    metrics: (req, res) => serveMetrics(req, res, config.metrics, meter),
    tls,
  });
  httpServer.on("upgrade", (req, socket, head) => signalingServer.handleUpgrade(req, socket, head));

  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const close = (): Promise<void> => {
    closing ??= shutdown();
    return closing;
  };

  const commands = new AdminCommands({ operator, logger, shutdown: () => void close() });
  let control: ControlSocket | undefined;
  let stopConsole: (() => void) | undefined;

  // SIGHUP re-reads the certificate files: new TLS connections get them, open ones stay as they are.
  // A file that cannot be used keeps the certificate in service and logs why. Without TLS it is
  // handled all the same (`systemctl reload` must never stop the server, as Node's default would).
  const reloadTls = () => {
    if (!tls || !("setSecureContext" in httpServer)) {
      logger.info("SIGHUP: no TLS certificate to reload");
      return;
    }
    try {
      const next = loadTlsCredentials(tls.certFile, tls.keyFile);
      httpServer.setSecureContext({ cert: next.cert, key: next.key });
      tls = next;
      logger.info({ certFile: next.certFile, fingerprint256: next.fingerprint256 }, "TLS certificate reloaded");
    } catch (error) {
      logger.error(
        { err: error, certFile: tls.certFile, keyFile: tls.keyFile },
        `TLS certificate not reloaded, the previous one stays in service: ${(error as Error).message}`,
      );
    }
  };
  process.on("SIGHUP", reloadTls);

  async function shutdown(): Promise<void> {
    logger.info("shutting down");
    process.off("SIGHUP", reloadTls);
    stopConsole?.();
    operatorFeed.close();
    sessionSweeper.close();
    calls.endAll();
    liveness.close();
    media.close();
    signalingServer.close();
    await callBus?.close();
    await directoryBus?.close();
    // The other nodes see this one's users offline at once rather than after its heartbeat expires.
    await adminBus?.close();
    await cluster?.close();
    accounts.close();
    refusals.close();
    retention.close();
    await closeHttp(httpServer);
    if (redirect) await closeHttp(redirect.server);
    await control?.close();
    // Every audit entry and call recorded until now is written before the database closes.
    await history.flush();
    const unwritten = await audit.close();
    if (unwritten > 0) logger.error({ lost: unwritten }, "audit entries lost: the database was unreachable");
    await storage.close();
    logger.info("stopped");
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    resolveClosed();
  }

  let redirect: Awaited<ReturnType<typeof listenHttpsRedirect>> | undefined;
  try {
    control = await ControlSocket.listen(paths.controlSocket, commands, logger);
    // Now that no other server runs with this data dir, and before any connection: the calls the
    // last stop (a crash) left open are closed as interrupted.
    // On a shared database, only the calls no process has marked alive for a while.
    const interrupted = await history.closeInterrupted(
      storage.kind === "postgres" ? liveness.staleBefore() : undefined,
    );
    if (interrupted > 0)
      logger.warn({ calls: interrupted }, "calls interrupted by the last stop closed in the history");
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(config.port, config.host, () => {
        httpServer.off("error", reject);
        resolve();
      });
    });
    if (config.httpRedirectPort !== undefined) {
      if (!tls) throw new Error("--http-redirect-port needs HTTPS (--tls-cert/--tls-key or --self-signed)");
      const httpsPort = (httpServer.address() as AddressInfo).port;
      redirect = await listenHttpsRedirect({ host: config.host, port: config.httpRedirectPort, httpsPort });
    }
  } catch (error) {
    sessionSweeper.close();
    retention.close();
    liveness.close();
    await callBus?.close();
    await directoryBus?.close();
    await adminBus?.close();
    await cluster?.close();
    await closeHttp(httpServer);
    await control?.close();
    await audit.close();
    await storage.close();
    throw error;
  }

  const port = (httpServer.address() as AddressInfo).port;
  const displayHost = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
  const host = displayHost.includes(":") ? `[${displayHost}]` : displayHost;
  const httpUrl = `${tls ? "https" : "http"}://${host}:${port}`;
  const signalingUrl = `${tls ? "wss" : "ws"}://${host}:${port}${SIGNALING_PATH}`;
  logger.info({ host: config.host, port, dataDir: config.dataDir, media: config.media }, "listening");
  if (consoleInput) stopConsole = startConsole(commands, consoleInput, consoleOutput ?? process.stdout);

  return {
    config,
    httpUrl,
    signalingUrl,
    port,
    get tls() {
      return tls && { certFile: tls.certFile, keyFile: tls.keyFile, fingerprint256: tls.fingerprint256 };
    },
    redirectPort: redirect?.port,
    controlSocketPath: paths.controlSocket,
    commands,
    operator,
    logger,
    storage,
    get db(): Database {
      if (storage instanceof SqliteStorage) return storage.db;
      throw new Error("server.db is the SQLite handle; this server keeps its data in PostgreSQL");
    },
    cluster,
    runRetention: (now) => retention.runNow(now),
    closed,
    close,
  };
}

function closeHttp(server: http.Server | https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
