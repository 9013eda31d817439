import dgram from "node:dgram";
import dns from "node:dns/promises";
import net from "node:net";

/** No local address could be found for reaching the server (name not found, no route). */
export class LocalAddressError extends Error {
  readonly code = "NO_LOCAL_ADDRESS";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LocalAddressError";
  }
}

/**
 * The local IPv4 address the system would send from to reach `host`:`port`: the host is resolved,
 * and a UDP socket connected to it (no packet is sent: connecting a datagram socket only picks the
 * route), whose own address is then the route's source address. A server on loopback gives
 * 127.0.0.1; one across a LAN, the address of the interface facing it. The bots' media (werift's
 * single bind address) is IPv4 only, hence IPv4 here.
 */
export async function localAddressTowards(host: string, port: number): Promise<string> {
  if (net.isIPv6(host)) {
    throw new LocalAddressError(
      `the bots' media is IPv4 only, and ${host} is an IPv6 address: give the local IPv4 address with --bind`,
    );
  }
  let remote: string;
  try {
    remote = net.isIPv4(host) ? host : (await dns.lookup(host, { family: 4 })).address;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new LocalAddressError(`cannot find an IPv4 address for ${host} (${code})`, { cause: error });
  }
  const socket = dgram.createSocket("udp4");
  try {
    return await new Promise<string>((resolve, reject) => {
      socket.once("error", reject);
      socket.connect(port, remote, () => resolve(socket.address().address));
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new LocalAddressError(`no route to ${host} (${remote}): ${code}`, { cause: error });
  } finally {
    socket.close();
  }
}
