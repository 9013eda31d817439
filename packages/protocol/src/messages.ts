import type { WireError } from "./errors.js";
import type { EventData, EventName } from "./events.js";
import type { RequestParams, RequestResult, RequestType } from "./requests.js";

/** Client -> server. */
export type RequestMessage<T extends RequestType = RequestType> = {
  [K in T]: { type: K; requestId: string; params: RequestParams<K> };
}[T];

export interface OkResponse<T extends RequestType = RequestType> {
  type: "response";
  requestId: string;
  ok: true;
  result: RequestResult<T>;
}

export interface ErrorResponse {
  type: "response";
  /** null when the request could not be read far enough to know its id. */
  requestId: string | null;
  ok: false;
  error: WireError;
}

export type ResponseMessage = OkResponse | ErrorResponse;

export type EventMessage<E extends EventName = EventName> = {
  [K in E]: { type: "event"; event: K; data: EventData<K> };
}[E];

/** Server -> client. */
export type ServerMessage = ResponseMessage | EventMessage;
