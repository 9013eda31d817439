/** A timestamp in the operator's own locale and time zone; a dash when there is none. */
export function localTime(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}
