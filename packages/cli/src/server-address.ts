import net from "node:net";

/**
 * A server address as users write it, turned into the signaling WebSocket URL:
 *
 *   http://host:port   -> ws://host:port/ws
 *   https://host:port  -> wss://host:port/ws
 *   ws://host:port/ws  -> as written
 *   wss://host:port/ws -> as written
 *   host:port, host    -> ws://host:port/ws (port 8080, the server's default, when left out)
 *
 * IPv6 addresses go in brackets (`[2001:db8::1]:8080`). A URL with a scheme and no port takes the
 * scheme's (80 or 443, as a browser does: the server behind a reverse proxy). The path defaults
 * to /ws; a path written out (a proxy's sub-path) is kept.
 */
export interface ServerAddress {
  /** The signaling WebSocket URL: `ws://` or `wss://`. */
  url: string;
  /** The host as written: a name, an IPv4 address or an IPv6 address (without brackets). */
  host: string;
  port: number;
  /** `wss://`: TLS, with the server's certificate checked. */
  secure: boolean;
}

/** The port of a `parley server` started without --port. */
export const DEFAULT_SERVER_PORT = 8080;

/** The forms --server accepts, as named in its errors and help. */
export const SERVER_ADDRESS_FORMS =
  "http://host:port, https://host:port, ws://host:port/ws, wss://host:port/ws or host:port (port 8080 when left out; IPv6 in brackets)";

/** A --server value that is not one of the accepted forms. */
export class ServerAddressError extends Error {
  readonly code = "BAD_SERVER_ADDRESS";
  readonly value: string;
  /** What is wrong with it, e.g. "unknown scheme ftp://". */
  readonly problem: string;

  constructor(value: string, problem: string) {
    super(`"${value}" is not a server address: ${problem}. Accepted: ${SERVER_ADDRESS_FORMS}.`);
    this.name = "ServerAddressError";
    this.value = value;
    this.problem = problem;
  }
}

const SCHEMES: Record<string, { ws: "ws" | "wss"; port: number }> = {
  http: { ws: "ws", port: 80 },
  ws: { ws: "ws", port: 80 },
  https: { ws: "wss", port: 443 },
  wss: { ws: "wss", port: 443 },
};

/** Host names (labels of letters, digits and inner hyphens) and IPv4 addresses. */
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i;

/** Parses a --server value; throws ServerAddressError naming the value and the accepted forms. */
export function parseServerAddress(value: string): ServerAddress {
  const fail = (problem: string): never => {
    throw new ServerAddressError(value, problem);
  };
  const text = value.trim();
  if (!text) fail("it is empty");
  let scheme = "ws";
  let rest = text;
  const schemed = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text);
  if (schemed) {
    scheme = schemed[1]!.toLowerCase();
    rest = schemed[2]!;
    if (!SCHEMES[scheme]) fail(`unknown scheme ${scheme}://`);
  } else if (/^[a-z][a-z0-9+.-]*:\/(?!\/)/i.test(text)) {
    fail("a scheme needs two slashes, as in http://host:port");
  }
  const { ws, port: schemePort } = SCHEMES[scheme]!;
  const split = /^([^/?#]*)(.*)$/s.exec(rest)!;
  const authority = split[1]!;
  const tail = split[2]!;
  if (authority.includes("@")) fail("a user name or password does not belong in it");
  const colons = authority.split(":").length - 1;
  const parts = /^(\[[^\]]*\]|[^:[\]]*)(?::(.*))?$/.exec(authority);
  if (!parts || (colons > 1 && !authority.startsWith("[")))
    fail("an IPv6 address goes in brackets, as in [2001:db8::1]:8080");
  const hostText = parts![1]!;
  const portText = parts![2];
  if (!hostText) fail("the host is missing");
  let host = hostText;
  if (hostText.startsWith("[")) {
    host = hostText.slice(1, -1);
    if (!net.isIPv6(host)) fail(`${hostText} is not an IPv6 address`);
  } else if (!HOST_NAME.test(hostText)) {
    fail(`${hostText} is not a host name or address`);
  }
  let port = schemed ? schemePort : DEFAULT_SERVER_PORT;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) fail(`the port "${portText}" is not 1-65535`);
  }
  if (tail.includes("#")) fail("a #fragment does not belong in it");
  const path = tail === "" || tail === "/" ? "/ws" : tail.startsWith("?") ? `/ws${tail}` : tail;
  let url: URL;
  try {
    url = new URL(`${ws}://${hostText}:${port}${path}`);
  } catch {
    return fail(`${hostText} is not a host name or address`);
  }
  return { url: url.href, host, port, secure: ws === "wss" };
}
