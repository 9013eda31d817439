// The login limiter and its counts, for the tests of limits shared by the nodes of a cluster.
export { type LoginCounts, MemoryLoginCounts } from "./accounts/login-counts.js";
export { type LoginAttempt, LoginLimiter } from "./accounts/login-limiter.js";
// The account stores and password hash, for tools that prepare a data directory before the server
// starts (the bench seeds thousands of accounts through them).
export { hashPassword } from "./accounts/password-hasher.js";
export { SessionStore } from "./accounts/session-store.js";
export { UserStore } from "./accounts/user-store.js";
export { AdminCommands, type CommandResult, DEMO_PASSWORD, DEMO_USERS } from "./admin/admin-commands.js";
export { sendControlCommand } from "./admin/control-socket.js";
export { type MigrationResult, migrateToPostgres } from "./admin/migrate-to-postgres.js";
export { OPERATOR_FEED_INTERVAL_MS } from "./admin/operator-feed.js";
export type { OperatorService } from "./admin/operator-service.js";
export { splitCommandLine } from "./admin/table.js";
export { AuditLog } from "./audit/audit-log.js";
export { CallHistoryStore, type CallRecord } from "./calls/call-history-store.js";
export { Cluster } from "./cluster/cluster.js";
export { COALESCE_MS } from "./cluster/cluster-presence.js";
export { inboxKey, NodeInbox } from "./cluster/node-inbox.js";
export { HEARTBEAT_MS, NODE_TTL_MS, type NodeInfo, type NodeLoad, NodeRegistry } from "./cluster/node-registry.js";
export { LOGIN_KEY_PREFIX, SharedLoginCounts } from "./cluster/shared-login-counts.js";
export {
  DEFAULT_CONFIG,
  dataPaths,
  defaultMediaIp,
  METRICS_EXPOSURES,
  METRICS_TOKEN_MIN,
  type MetricsConfig,
  type MetricsExposure,
  parsePortRange,
  resolveConfig,
  type ServerConfig,
} from "./config.js";
export {
  generateSelfSigned,
  SELF_SIGNED_DAYS,
  selfSignedPaths,
  type TlsConfig,
  TlsConfigError,
} from "./http/tls.js";
export {
  assignSlots,
  type CreateLegOptions,
  DATA_PLANES,
  type DataPlane,
  type MediaLeg,
  type MediaLegState,
  MediaRelay,
  type MediaRelayOptions,
} from "./media/index.js";
export { DEFAULT_TURN_TTL_SECONDS, type TurnConfig, turnIceServers } from "./media/turn-credentials.js";
export { isLoopback } from "./metrics/metrics-endpoint.js";
export { type ParleyServer, SERVER_VERSION, type StartOptions, startServer } from "./parley-server.js";
export { PhonebookStore } from "./phonebook/phonebook-store.js";
export { type Database, openDatabase, schemaVersion } from "./storage/database.js";
export { type DatabaseTarget, parseDatabaseUrl, redactDatabaseUrl } from "./storage/database-url.js";
export { MIGRATIONS } from "./storage/migrations.js";
export { openStorage } from "./storage/open-storage.js";
export { POSTGRES_BASELINE, SCHEMA_VERSION, SchemaTooNewError } from "./storage/postgres-migrations.js";
export { PostgresStorage } from "./storage/postgres-storage.js";
export { SettingsStore } from "./storage/settings-store.js";
export { type SqlClient, type SqlValue, UniqueViolation } from "./storage/sql-client.js";
export { SqliteClient } from "./storage/sqlite-client.js";
export { SqliteStorage } from "./storage/sqlite-storage.js";
export { type Storage, TABLES, type TableName } from "./storage/storage.js";
