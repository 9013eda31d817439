import type { EventData } from "@parley/protocol";

/** How long an ended call's id is remembered, to answer late requests with CALL_ENDED. */
const ENDED_MEMORY_MS = 5 * 60_000;

/**
 * Recently ended calls: when, and for participants who were reconnecting at the end (their device
 * could not be told), how it ended, told when they take the call back.
 */
export class EndedCalls {
  readonly #ended = new Map<string, { at: number; untold?: Set<number>; event?: EventData<"call.ended"> }>();

  /** The call ended; `untold`: the users who could not be told, and the `call.ended` they are owed. */
  remember(callId: string, untold: { untold?: Set<number>; event?: EventData<"call.ended"> }): void {
    const now = Date.now();
    this.#ended.set(callId, { at: now, ...untold });
    for (const [id, { at }] of this.#ended) {
      if (now - at < ENDED_MEMORY_MS) break;
      this.#ended.delete(id);
    }
  }

  /** The call ended within the memory (at least 5 minutes ago). */
  has(callId: string): boolean {
    return this.#ended.has(callId);
  }

  /** The `call.ended` this user was not told (they were reconnecting), once: later calls return undefined. */
  untoldTo(callId: string, userId: number): EventData<"call.ended"> | undefined {
    const ended = this.#ended.get(callId);
    return ended?.event && ended.untold?.delete(userId) ? ended.event : undefined;
  }
}
