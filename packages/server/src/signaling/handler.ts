import type { ParsedParams, RequestResult, RequestType } from "@parley/protocol";
import type { Services } from "../services.js";
import type { Connection } from "./connection.js";

/** Runs one request type; params arrive already validated against the protocol schema. */
export type Handler<T extends RequestType> = (
  params: ParsedParams<T>,
  conn: Connection,
  services: Services,
) => RequestResult<T> | Promise<RequestResult<T>>;
