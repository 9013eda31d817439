import { CallHistoryStore, type CallRecord } from "../calls/call-history-store.js";
import type { Database } from "../storage/database.js";

/**
 * The call history store, counting each recorded call in the metrics: every call ends through
 * `record()` exactly once, so the call outcomes are counted without the call service knowing
 * about metrics.
 */
export class MeteredCallHistoryStore extends CallHistoryStore {
  readonly #onRecord: (call: CallRecord) => void;

  constructor(db: Database, onRecord: (call: CallRecord) => void) {
    super(db);
    this.#onRecord = onRecord;
  }

  override record(call: CallRecord): void {
    super.record(call);
    this.#onRecord(call);
  }
}
