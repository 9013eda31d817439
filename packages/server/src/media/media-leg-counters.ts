/** Per-leg traffic counters. Bytes are RTP payload bytes. */
export interface MediaLegCounters {
  /** RTP packets received from this leg's client. */
  packetsIn: number;
  /** RTP packets sent to this leg's client (audio forwarded from other legs). */
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** When the last RTP packet arrived from the client, in ms since the epoch; 0 before the first. */
  lastPacketAt: number;
}

/**
 * Quality of a leg (null until measured): loss and interarrival jitter of the audio the relay
 * receives from the client (RFC 3550 A.3 and A.8, counted by the leg on any data plane), round
 * trip from the client's receiver reports on the relay's sender reports (werift's RTCP).
 */
export interface MediaLegQuality {
  packetsLost: number | null;
  jitterMs: number | null;
  roundTripMs: number | null;
}

/** Relay-wide totals that every leg adds its forwarded packets to. */
export interface ForwardTotals {
  packetsForwarded: number;
  bytesForwarded: number;
}
