export * from "./close-codes.js";
export * from "./common.js";
export * from "./errors.js";
export * from "./events.js";
export * from "./limits.js";
export * from "./messages.js";
export * from "./requests.js";
export * from "./version.js";
