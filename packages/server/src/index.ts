export { AdminCommands, type CommandResult, DEMO_PASSWORD, DEMO_USERS } from "./admin/admin-commands.js";
export { sendControlCommand } from "./admin/control-socket.js";
export { splitCommandLine } from "./admin/table.js";
export {
  DEFAULT_CONFIG,
  dataPaths,
  defaultMediaIp,
  parsePortRange,
  resolveConfig,
  type ServerConfig,
} from "./config.js";
export { applyWeriftFixes } from "./media/werift-fixes.js";
export { type ParleyServer, SERVER_VERSION, type StartOptions, startServer } from "./parley-server.js";
export { openDatabase, schemaVersion } from "./storage/database.js";
export { MIGRATIONS } from "./storage/migrations.js";
