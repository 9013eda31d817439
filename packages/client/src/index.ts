export {
  Call,
  type CallActions,
  type CallEnd,
  type CallEvents,
  type MediaSetup,
  type PeerConnectionFactory,
  type PeerConnectionLike,
} from "./call.js";
export {
  type ConnectionState,
  type DeviceTokenStore,
  ParleyClient,
  type ParleyClientDelegate,
  type ParleyClientEvents,
  type ParleyClientOptions,
} from "./parley-client.js";
export { SignalingChannel, type WebSocketFactory, type WebSocketLike } from "./signaling-channel.js";
export { Emitter } from "./typed-emitter.js";
