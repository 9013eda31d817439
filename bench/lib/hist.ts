/**
 * A latency histogram in milliseconds: 10 µs buckets up to 200 ms, 1 ms buckets up to 60 s, one
 * overflow bucket above (the exact maximum is kept). Mergeable across processes in its sparse form.
 */
const FINE_MS = 0.01;
const FINE_BUCKETS = 20_000;
const FINE_LIMIT_MS = FINE_MS * FINE_BUCKETS;
const COARSE_MS = 1;
const BUCKETS = FINE_BUCKETS + (60_000 - FINE_LIMIT_MS) / COARSE_MS;

function bucketOf(ms: number): number {
  if (ms < FINE_LIMIT_MS) return Math.floor(ms / FINE_MS);
  return Math.min(BUCKETS, FINE_BUCKETS + Math.floor((ms - FINE_LIMIT_MS) / COARSE_MS));
}

function midpointOf(index: number): number {
  if (index < FINE_BUCKETS) return (index + 0.5) * FINE_MS;
  return FINE_LIMIT_MS + (index - FINE_BUCKETS + 0.5) * COARSE_MS;
}

export interface SparseHistogram {
  /** [bucket index, count] pairs; index BUCKETS is the overflow bucket. */
  buckets: [number, number][];
  count: number;
  sum: number;
  max: number;
}

export class Histogram {
  readonly #counts = new Uint32Array(BUCKETS + 1);
  count = 0;
  sum = 0;
  max = 0;

  record(ms: number): void {
    const value = ms < 0 ? 0 : ms;
    this.#counts[bucketOf(value)]!++;
    this.count++;
    this.sum += value;
    if (value > this.max) this.max = value;
  }

  merge(other: SparseHistogram): void {
    for (const [index, count] of other.buckets) this.#counts[index]! += count;
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  /** The value below which `p` (0-1) of the samples fall; NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return i === BUCKETS ? this.max : Math.min(this.max, midpointOf(i));
    }
    return this.max;
  }

  get mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count;
  }

  toSparse(): SparseHistogram {
    const buckets: [number, number][] = [];
    for (let i = 0; i <= BUCKETS; i++) if (this.#counts[i]! > 0) buckets.push([i, this.#counts[i]!]);
    return { buckets, count: this.count, sum: this.sum, max: this.max };
  }

  static from(...parts: SparseHistogram[]): Histogram {
    const histogram = new Histogram();
    for (const part of parts) histogram.merge(part);
    return histogram;
  }

  /** p50/p95/p99/max/mean, rounded to µs. */
  summary(): { count: number; p50: number; p95: number; p99: number; max: number; mean: number } {
    return {
      count: this.count,
      p50: round3(this.percentile(0.5)),
      p95: round3(this.percentile(0.95)),
      p99: round3(this.percentile(0.99)),
      max: round3(this.max),
      mean: round3(this.mean),
    };
  }
}

export function round3(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : value;
}

/** Percentile of a plain array (sorted copy). */
export function percentileOf(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
