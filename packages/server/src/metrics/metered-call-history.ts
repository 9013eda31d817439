import { CallHistoryStore, type CallRecord } from "../calls/call-history-store.js";
import type { SqlClient } from "../storage/sql-client.js";

/**
 * The call history store, counting each recorded call in the metrics: every call ends through
 * `record()` exactly once, so the call outcomes are counted without the call service knowing
 * about metrics.
 */
export class MeteredCallHistoryStore extends CallHistoryStore {
  readonly #onRecord: (call: CallRecord) => void;

  constructor(sql: SqlClient, onRecord: (call: CallRecord) => void, options: { node?: string } = {}) {
    super(sql, options);
    this.#onRecord = onRecord;
  }

  override record(call: CallRecord): void {
    super.record(call);
    this.#onRecord(call);
  }
}
