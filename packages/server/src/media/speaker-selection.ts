/**
 * Which sources fill a listener's receive slots. With no more sources than slots every source
 * gets one; with more, the loudest are heard ("last N" by audio level, as SFUs do), and a source
 * keeps its slot until another is clearly louder, so slots do not flap between two speakers.
 * A source keeps the slot it had, so a client's streams do not shuffle when someone joins.
 *
 * Pure: `current` is the slots' present sources, `candidates` every source the listener may hear,
 * `loudness` ranks them (higher is louder). Returns the new source of each slot.
 */
export function assignSlots<T extends object>(
  current: readonly (T | null)[],
  candidates: readonly T[],
  loudness: (source: T) => number,
  margin = 8,
): (T | null)[] {
  const eligible = new Set(candidates);
  const next: (T | null)[] = current.map((source) => (source !== null && eligible.has(source) ? source : null));
  const placed = new Set(next.filter((source): source is T => source !== null));
  const waiting = candidates.filter((source) => !placed.has(source)).sort((a, b) => loudness(b) - loudness(a));
  for (const source of waiting) {
    const free = next.indexOf(null);
    if (free !== -1) {
      next[free] = source;
      continue;
    }
    let quietest = -1;
    for (let slot = 0; slot < next.length; slot++) {
      if (quietest === -1 || loudness(next[slot] as T) < loudness(next[quietest] as T)) quietest = slot;
    }
    if (quietest !== -1 && loudness(source) > loudness(next[quietest] as T) + margin) next[quietest] = source;
  }
  return next;
}
