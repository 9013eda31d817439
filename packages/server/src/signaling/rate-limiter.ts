/**
 * Token bucket: `burst` tokens, refilled at `perSecond`. Each message takes one; a message
 * that finds the bucket empty is refused and adds a strike, an accepted one removes a
 * strike. `maxStrikes` strikes mean sustained flooding.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  #strikes = 0;
  readonly #burst: number;
  readonly #perSecond: number;
  readonly #maxStrikes: number;

  constructor(options: { burst: number; perSecond: number; maxStrikes: number }, now = Date.now()) {
    this.#burst = options.burst;
    this.#perSecond = options.perSecond;
    this.#maxStrikes = options.maxStrikes;
    this.#tokens = options.burst;
    this.#last = now;
  }

  /** "ok": go ahead; "limited": refuse this message; "flooding": close the connection. */
  take(now = Date.now()): "ok" | "limited" | "flooding" {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#perSecond);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      if (this.#strikes > 0) this.#strikes -= 1;
      return "ok";
    }
    this.#strikes += 1;
    return this.#strikes >= this.#maxStrikes ? "flooding" : "limited";
  }
}
