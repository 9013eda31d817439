export * from "./browser.js";
export { type Coturn, type CoturnOptions, coturnUnavailable, freeTcpPort, startCoturn } from "./coturn.js";
export { dbSnapshot, storageSnapshot } from "./db-snapshot.js";
export {
  createNetworkLab,
  type LabHost,
  LabUnsupportedError,
  type NetworkLab,
  NetworkLabError,
  netemAvailable,
  networkLabUnavailable,
} from "./network-lab.js";
export {
  BACKENDS,
  type Backend,
  backendUnavailable,
  freshDatabase,
  type Postgres,
  postgresUnavailable,
  sharedPostgres,
  startPostgres,
} from "./postgres.js";
export { type Closed, type ConnectOptions, loggedIn, RawClient, registered, TEST_PASSWORD } from "./raw-client.js";
export { type Redis, redisUnavailable, startRedis } from "./redis.js";
export {
  type BotRun,
  launchServerProcess,
  PARLEY_BIN,
  type ProcessResult,
  runAdmin,
  runBot,
  runParley,
  type ServerProcess,
  sdkClient,
  serverProcessArgs,
  spawnServer,
  startTestServer,
  type TestServer,
  type TestServerOptions,
  tempDir,
  WEB_ROOT,
  withTestServer,
} from "./test-server.js";
export { waitFor } from "./wait-for.js";
