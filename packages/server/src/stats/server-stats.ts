/** Counters shown by the operator's `stats` command, the operator page and the metrics. */
export class ServerStats {
  readonly startedAt = new Date();
  connectionsTotal = 0;
  messagesIn = 0;
  messagesOut = 0;
  readonly errors = new Map<string, number>();
  readonly closes = new Map<string, number>();
  /** Requests received, by (valid) request type: for the metrics. */
  readonly requests = new Map<string, number>();

  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  countRequest(type: string): void {
    this.requests.set(type, (this.requests.get(type) ?? 0) + 1);
  }

  countClose(reason: string): void {
    this.closes.set(reason, (this.closes.get(reason) ?? 0) + 1);
  }
}
