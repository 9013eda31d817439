import net from "node:net";

/** The address the relay listens on and advertises, and its UDP port range (inclusive). */
export interface MediaConfig {
  ip: string;
  portMin: number;
  portMax: number;
}

/** Why a media config cannot work, or null if it can. */
export function mediaConfigProblem(config: MediaConfig): string | null {
  if (net.isIP(config.ip) === 0) return `media ip '${config.ip}' is not an IP address`;
  if (config.ip === "0.0.0.0" || config.ip === "::") {
    return `media ip '${config.ip}' is a wildcard; give the address clients can reach`;
  }
  const { portMin, portMax } = config;
  if (!Number.isInteger(portMin) || !Number.isInteger(portMax) || portMin < 1 || portMax > 65535) {
    return `media ports ${portMin}-${portMax} are not within 1-65535`;
  }
  // werift quirk: icePortRange [n, n] throws ("should not be same value"), so one port is not enough.
  if (portMin >= portMax) return `media port range ${portMin}-${portMax} needs at least two ports (MIN < MAX)`;
  return null;
}
