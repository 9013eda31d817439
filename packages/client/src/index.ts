export { ParleyClient, type ParleyClientEvents, type ParleyClientOptions } from "./parley-client.js";
export { SignalingChannel, type WebSocketFactory, type WebSocketLike } from "./signaling-channel.js";
export { Emitter } from "./typed-emitter.js";
