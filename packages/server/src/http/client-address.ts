import type { IncomingMessage } from "node:http";
import { isIP, isIPv4 } from "node:net";
import proxyaddr from "proxy-addr";

/** Whether an address belongs to a trusted proxy (`hop` counts from the TCP peer, 0). */
type TrustFn = (address: string, hop: number) => boolean;

/**
 * Compiles the `--trust-proxy` list (addresses, CIDRs such as 10.0.0.0/8 or ::1/128, or the
 * names loopback, linklocal, uniquelocal) with the Express project's `proxy-addr`, which also
 * matches IPv4-mapped IPv6 peers (::ffff:127.0.0.1) against IPv4 ranges. Empty entries are
 * skipped. Throws an Error naming the entry that is not an address or range.
 */
export function compileTrustProxy(entries: readonly string[]): TrustFn {
  const list = entries.map((entry) => entry.trim()).filter((entry) => entry !== "");
  for (const entry of list) {
    try {
      proxyaddr.compile(entry);
    } catch {
      throw new Error(
        `--trust-proxy: '${entry}' is not an IP address or CIDR range (e.g. 127.0.0.1, 10.0.0.0/8, fd00::/8, loopback)`,
      );
    }
  }
  return proxyaddr.compile(list);
}

/**
 * An address in one canonical text form: IPv4-mapped IPv6 (::ffff:127.0.0.1, ::ffff:7f00:1)
 * becomes plain IPv4, IPv6 is lower-cased and compressed (WHATWG URL serialisation), a zone
 * or anything else that is not an IP address is returned unchanged.
 */
export function normalizeAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  let canonical: string;
  try {
    canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const high = Number.parseInt(mapped[1]!, 16);
  const low = Number.parseInt(mapped[2]!, 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join(".");
}

/**
 * The node identifiers of a `Forwarded` header (RFC 7239), in header order: the `for=` value of
 * each element with any port and brackets removed, or null for an element that has no `for=`,
 * names no address (`unknown`, an obfuscated `_name`) or cannot be parsed.
 */
export function forwardedFor(header: string): (string | null)[] {
  return splitOutsideQuotes(header, ",").map((element) => {
    let found: string | null = null;
    for (const pair of splitOutsideQuotes(element, ";")) {
      const eq = pair.indexOf("=");
      if (eq <= 0) return null;
      const name = pair.slice(0, eq).trim().toLowerCase();
      const value = unquote(pair.slice(eq + 1).trim());
      if (value === null) return null;
      if (name === "for") {
        if (found !== null) return null; // a parameter may appear once per element
        found = nodeAddress(value);
        if (found === null) return null;
      }
    }
    return found;
  });
}

/** Splits at `separator` where it is not inside a quoted string; pieces are trimmed. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === "\\") i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && c === separator) {
      pieces.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  pieces.push(text.slice(start).trim());
  return pieces;
}

/** A token as is, a quoted string without its quotes and escapes; null when malformed. */
function unquote(value: string): string | null {
  if (!value.startsWith('"')) return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : null;
  if (value.length < 2 || !value.endsWith('"')) return null;
  return value.slice(1, -1).replace(/\\(.)/g, "$1");
}

/** The IP address of a node identifier ("192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:4711"); null otherwise. */
function nodeAddress(node: string): string | null {
  if (node.startsWith("[")) {
    const end = node.indexOf("]");
    const v6 = end > 0 ? node.slice(1, end) : "";
    return isIP(v6) === 6 ? v6 : null;
  }
  const host = node.includes(":") ? node.slice(0, node.indexOf(":")) : node;
  return isIPv4(host) ? host : null;
}

/**
 * Walks a forwarding chain from the TCP peer towards the client (`hops[0]` is the peer, then
 * the header's entries right to left): the first hop that is not a trusted proxy is the client.
 * A hop that names no IP address ends the walk at the trusted proxy that reported it.
 */
function walk(hops: readonly (string | null)[], trust: TrustFn): string {
  let client = hops[0]!;
  for (let i = 1; i < hops.length; i++) {
    if (!trust(client, i - 1)) break;
    const next = hops[i];
    if (next === null || next === undefined || isIP(next) === 0) break;
    client = next;
  }
  return client;
}

/**
 * Resolves a request's client address. Without trusted proxies, or when the TCP peer is not
 * one, it is the peer and the headers are ignored entirely. When the peer is trusted,
 * `X-Forwarded-For` and `Forwarded` (`for=`) are walked from the right, and the right-most
 * address that is not itself a trusted proxy is the client. When both headers are present and
 * name different clients (a proxy that sets one of them passes the other through from the
 * client untouched, and nothing tells which is which), neither is believed and the peer counts.
 * The result is normalised (IPv4-mapped IPv6 as plain IPv4).
 */
export function clientAddressResolver(trustProxy: readonly string[]): (req: IncomingMessage) => string {
  const trust = compileTrustProxy(trustProxy);
  return (req) => {
    const peer = req.socket.remoteAddress;
    if (peer === undefined) return "unknown";
    if (!trust(peer, 0)) return normalizeAddress(peer);
    const header = req.headers["x-forwarded-for"];
    const xff = Array.isArray(header) ? header.join(",") : header;
    const forwarded = req.headers.forwarded;
    const fromXff = xff === undefined ? undefined : walk([peer, ...xffAddresses(xff).reverse()], trust);
    const fromForwarded =
      forwarded === undefined ? undefined : walk([peer, ...forwardedFor(forwarded).reverse()], trust);
    const client = normalizeAddress(fromXff ?? fromForwarded ?? peer);
    const other = fromXff !== undefined && fromForwarded !== undefined ? normalizeAddress(fromForwarded) : client;
    return other === client ? client : normalizeAddress(peer);
  };
}

/** The addresses of an `X-Forwarded-For` header, in header order (a port after IPv4 or [IPv6] removed). */
function xffAddresses(header: string): (string | null)[] {
  return header.split(",").map((entry) => {
    const trimmed = entry.trim();
    return isIP(trimmed) !== 0 ? trimmed : nodeAddress(trimmed);
  });
}
