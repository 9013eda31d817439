// What the `parley` command's package offers other code (the tests and the bench drive its bots
// and read their outcomes): the bots' exit codes and werift peer, and how a server address is
// read. The command itself is bin/parley.js, which runs main.ts; importing this runs nothing.
export { BotExit } from "./bot/exit-codes.js";
export { type BotPeer, createBotPeer, type RtpFrame } from "./bot/werift-peer.js";
export {
  DEFAULT_SERVER_PORT,
  parseServerAddress,
  SERVER_ADDRESS_FORMS,
  type ServerAddress,
  ServerAddressError,
} from "./server-address.js";
