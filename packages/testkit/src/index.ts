export { dbSnapshot } from "./db-snapshot.js";
export { type Closed, loggedIn, RawClient, registered, TEST_PASSWORD } from "./raw-client.js";
export {
  PARLEY_BIN,
  runAdmin,
  type ServerProcess,
  sdkClient,
  spawnServer,
  startTestServer,
  type TestServer,
  tempDir,
} from "./test-server.js";
export { waitFor } from "./wait-for.js";
