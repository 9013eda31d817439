/**
 * A flood of bad logins, as a stranger on the network would send it, run as its own process
 * (so its CPU is not charged to the load generators):
 *
 *   node --import tsx bench/lib/login-flood.ts WS_URL SECONDS CONCURRENCY USERNAMES
 *
 * CONCURRENCY connections at once, each from its own loopback address (127.0.1.x: the limits per
 * address and per account see many sources, as with a botnet or a shared proxy) and replaced after
 * ten attempts (a new connection sidesteps the per-connection rate limit). Each attempt is an
 * `auth.login` with a wrong password for a real account (USERNAMES, comma-separated) or an
 * unknown one, sent when the previous reply arrived. Prints one JSON line at the end: attempts,
 * replies by error code, connections opened and refused.
 */
import { PROTOCOL_VERSION } from "@parley/protocol";
import WebSocket from "ws";

const [url, secondsText, concurrencyText, namesText] = process.argv.slice(2);
if (!url || !secondsText || !concurrencyText) {
  console.error("usage: login-flood.ts WS_URL SECONDS CONCURRENCY [USERNAMES]");
  process.exit(2);
}
const deadline = Date.now() + Number(secondsText) * 1000;
const concurrency = Number(concurrencyText);
const usernames = namesText ? namesText.split(",") : [];
const ATTEMPTS_PER_CONNECTION = 10;

const replies: Record<string, number> = {};
let attempts = 0;
let connections = 0;
let refusedConnections = 0;
let nextAddress = 0;

function address(): string {
  const n = nextAddress++ % 250;
  return `127.0.1.${n + 1}`;
}

/** One connection's life: hello, then up to ten bad logins one after the other. */
function session(): Promise<void> {
  return new Promise((resolve) => {
    connections++;
    const ws = new WebSocket(url!, { localAddress: address(), perMessageDeflate: false });
    let sent = 0;
    let id = 0;
    const finish = () => {
      ws.removeAllListeners();
      ws.on("error", () => undefined);
      if (ws.readyState === WebSocket.OPEN) ws.close();
      resolve();
    };
    const send = (type: string, params: unknown) => ws.send(JSON.stringify({ type, requestId: String(++id), params }));
    const attempt = () => {
      if (sent >= ATTEMPTS_PER_CONNECTION || Date.now() >= deadline) {
        finish();
        return;
      }
      sent++;
      attempts++;
      const real = usernames.length > 0 && attempts % 2 === 0;
      const username = real ? usernames[attempts % usernames.length]! : `nobody${attempts % 5000}`;
      send("auth.login", { username, password: `guess ${attempts}` });
    };
    ws.on("open", () => send("hello", { protocolVersion: PROTOCOL_VERSION }));
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString()) as {
        type: string;
        requestId?: string;
        ok?: boolean;
        error?: { code: string };
      };
      if (message.type !== "response") return;
      if (message.requestId === "1") {
        attempt();
        return;
      }
      const code = message.ok ? "ok" : (message.error?.code ?? "unknown");
      replies[code] = (replies[code] ?? 0) + 1;
      attempt();
    });
    ws.on("close", (code) => {
      if (code === 4007) refusedConnections++;
      finish();
    });
    ws.on("error", () => finish());
  });
}

async function lane(): Promise<void> {
  while (Date.now() < deadline) await session();
}

await Promise.all(Array.from({ length: concurrency }, () => lane()));
console.log(JSON.stringify({ attempts, replies, connections, refusedConnections }));
process.exit(0);
