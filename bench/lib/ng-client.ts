/**
 * A client for rtpengine's `ng` control protocol: one UDP datagram per request, "<cookie> <bencoded
 * dictionary>", answered by "<cookie> <bencoded dictionary>" with `result: "ok"` (or "error" and an
 * `error-reason`). The cookie pairs replies with requests; a lost datagram is sent again with the
 * same cookie (rtpengine caches its replies by cookie, so a retry never runs a command twice).
 * The bench drives rtpengine as a peer relay with it: `offer`, `answer`, `delete`, `ping`.
 */
import dgram from "node:dgram";

/** What bencode carries: byte strings (read back as UTF-8 text), integers, lists, dictionaries. */
export type Bencoded = string | number | Buffer | Bencoded[] | { [key: string]: Bencoded };

export function bencode(value: Bencoded): Buffer {
  const parts: Buffer[] = [];
  const walk = (v: Bencoded): void => {
    if (typeof v === "number") {
      if (!Number.isInteger(v)) throw new Error(`bencode: ${v} is not an integer`);
      parts.push(Buffer.from(`i${v}e`));
    } else if (typeof v === "string" || Buffer.isBuffer(v)) {
      const bytes = typeof v === "string" ? Buffer.from(v, "utf8") : v;
      parts.push(Buffer.from(`${bytes.length}:`), bytes);
    } else if (Array.isArray(v)) {
      parts.push(Buffer.from("l"));
      for (const item of v) walk(item);
      parts.push(Buffer.from("e"));
    } else {
      parts.push(Buffer.from("d"));
      // Keys in byte order, as bencode requires.
      for (const key of Object.keys(v).sort()) {
        walk(key);
        walk(v[key]!);
      }
      parts.push(Buffer.from("e"));
    }
  };
  walk(value);
  return Buffer.concat(parts);
}

/** Decodes one bencoded value; strings come back as UTF-8 text (rtpengine's are SDP and words). */
export function bdecode(data: Buffer): Bencoded {
  let at = 0;
  const fail = (what: string): never => {
    throw new Error(`bdecode: ${what} at byte ${at}`);
  };
  const value = (): Bencoded => {
    const c = data[at];
    if (c === undefined) return fail("unexpected end");
    if (c === 0x69 /* i */) {
      const end = data.indexOf(0x65, at);
      if (end < 0) fail("unterminated integer");
      const n = Number(data.subarray(at + 1, end).toString("ascii"));
      at = end + 1;
      return n;
    }
    if (c === 0x6c /* l */) {
      at++;
      const list: Bencoded[] = [];
      while (data[at] !== 0x65) list.push(value());
      at++;
      return list;
    }
    if (c === 0x64 /* d */) {
      at++;
      const dict: Record<string, Bencoded> = {};
      while (data[at] !== 0x65) {
        const key = value();
        if (typeof key !== "string") fail("dictionary key is not a string");
        dict[key as string] = value();
      }
      at++;
      return dict;
    }
    const colon = data.indexOf(0x3a, at);
    if (colon < 0) fail("bad string length");
    const length = Number(data.subarray(at, colon).toString("ascii"));
    if (!Number.isInteger(length) || length < 0) fail("bad string length");
    const text = data.subarray(colon + 1, colon + 1 + length).toString("utf8");
    at = colon + 1 + length;
    return text;
  };
  return value();
}

export class NgError extends Error {
  readonly command: string;

  constructor(command: string, reason: string) {
    super(`rtpengine ${command}: ${reason}`);
    this.command = command;
  }
}

/**
 * Cookies are unique per process, not per client: rtpengine caches its replies by cookie for a
 * while, so two clients counting from zero would get each other's (cached) replies.
 */
let nextCookie = 0;

type Pending = { resolve: (reply: Record<string, Bencoded>) => void; reject: (error: Error) => void };

/** One ng control socket to one rtpengine, shared by every request this process makes. */
export class NgClient {
  readonly #socket = dgram.createSocket("udp4");
  readonly #host: string;
  readonly #port: number;
  readonly #pending = new Map<string, Pending>();
  #closed = false;

  private constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
    this.#socket.on("message", (data) => this.#reply(data));
    this.#socket.on("error", () => undefined);
  }

  static async open(host: string, port: number): Promise<NgClient> {
    const client = new NgClient(host, port);
    await new Promise<void>((resolve) => client.#socket.bind(0, "127.0.0.1", resolve));
    return client;
  }

  /**
   * Sends `command` with `args`; resolves with the reply dictionary when its result is "ok",
   * rejects with the error reason otherwise, or after `timeoutMs` (re-sending every 500 ms).
   */
  request(command: string, args: Record<string, Bencoded>, timeoutMs = 5000): Promise<Record<string, Bencoded>> {
    if (this.#closed) return Promise.reject(new NgError(command, "the client is closed"));
    const cookie = `${process.pid}_${nextCookie++}`;
    const datagram = Buffer.concat([Buffer.from(`${cookie} `), bencode({ ...args, command })]);
    return new Promise((resolve, reject) => {
      const send = () => this.#socket.send(datagram, this.#port, this.#host);
      const retry = setInterval(send, 500);
      const timer = setTimeout(() => {
        finish();
        reject(new NgError(command, `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearInterval(retry);
        clearTimeout(timer);
        this.#pending.delete(cookie);
      };
      this.#pending.set(cookie, {
        resolve: (reply) => {
          finish();
          if (reply.result === "ok" || (command === "ping" && reply.result === "pong")) resolve(reply);
          else reject(new NgError(command, String(reply["error-reason"] ?? reply.result ?? "no result")));
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      });
      send();
    });
  }

  #reply(data: Buffer): void {
    const space = data.indexOf(0x20);
    if (space < 0) return;
    const pending = this.#pending.get(data.subarray(0, space).toString("ascii"));
    if (!pending) return;
    try {
      const reply = bdecode(data.subarray(space + 1));
      if (typeof reply !== "object" || Array.isArray(reply) || Buffer.isBuffer(reply))
        throw new Error("not a dictionary");
      pending.resolve(reply as Record<string, Bencoded>);
    } catch (error) {
      pending.reject(new Error(`rtpengine sent a reply that does not decode: ${(error as Error).message}`));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#pending.values()) pending.reject(new Error("the ng client closed"));
    this.#pending.clear();
    this.#socket.close();
  }
}
