import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import {
  CHROMIUM_HEADLESS_ARGS,
  createNetworkLab,
  type LabHost,
  LabUnsupportedError,
  type NetworkLab,
  NetworkLabError,
  netemAvailable,
  networkLabUnavailable,
} from "@parley/testkit";

const NODE = process.execPath;

/** In a host: sends argv[3] UDP datagrams to argv[1]:argv[2], paced, and prints how many echoes came back. */
const UDP_CLIENT = `
const [host, port, count] = process.argv.slice(1);
const socket = require("dgram").createSocket("udp4");
let echoes = 0;
socket.on("message", () => echoes++);
(async () => {
  for (let i = 0; i < Number(count); i++) {
    socket.send("datagram " + i, Number(port), host);
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
  }
  await new Promise((r) => setTimeout(r, 500));
  console.log(echoes);
  socket.close();
})();`;

/** In a host: connects to argv[1]:argv[2], expects its line echoed, exits 0; 1 on error or after 1.5 s. */
const TCP_CLIENT = `
const [host, port] = process.argv.slice(1);
const socket = require("net").connect(Number(port), host);
const fail = (why) => { console.log(why); process.exit(1); };
setTimeout(() => fail("timeout"), 1500);
socket.on("error", (e) => fail(e.code));
socket.on("connect", () => socket.write("hello\\n"));
socket.on("data", (d) => { if (String(d) === "hello\\n") { console.log("echoed"); process.exit(0); } });`;

/** In a host: UDP and TCP echo on one port of every address; prints the port, then "count N" per datagram. */
const ECHO_SERVER = `
const udp = require("dgram").createSocket("udp4");
let count = 0;
udp.on("message", (m, from) => { count++; udp.send(m, from.port, from.address); });
udp.bind(0, () => {
  const port = udp.address().port;
  require("net").createServer((s) => s.pipe(s)).listen(port, () => console.log("port " + port));
});
process.stdin.on("end", () => { console.log("count " + count); process.exit(0); }).resume();`;

interface EchoServer {
  port: number;
  /** Ends the server and returns how many datagrams it received. */
  stop(): Promise<number>;
}

/** Starts ECHO_SERVER in `host` (a long-running process in its namespace). */
async function echoServerIn(host: LabHost): Promise<EchoServer> {
  const child: ChildProcess = spawn(...host.command(NODE, ["-e", ECHO_SERVER]), { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", () => {
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`echo server in ${host.name} exited (${code}): ${out}`)));
  });
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        child.on("exit", () => resolve(Number(/count (\d+)/.exec(out)?.[1] ?? Number.NaN)));
        child.stdin?.end();
      }),
  };
}

/** UDP echo and TCP echo on `address` in this process; `udpReceived` counts datagrams, `tcpPeers` the clients. */
async function echoServersHere(address: string) {
  const udp = dgram.createSocket("udp4");
  const state = { udpReceived: 0, tcpPeers: [] as string[] };
  udp.on("message", (m, from) => {
    state.udpReceived++;
    udp.send(m, from.port, from.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, address, resolve));
  const tcp = net.createServer((s) => {
    state.tcpPeers.push(s.remoteAddress ?? "");
    s.pipe(s);
  });
  await new Promise<void>((resolve) => tcp.listen(0, address, resolve));
  let closed = false;
  return {
    state,
    udpPort: udp.address().port,
    tcpPort: (tcp.address() as net.AddressInfo).port,
    close: async () => {
      if (closed) return;
      closed = true;
      udp.close();
      await new Promise((resolve) => tcp.close(resolve));
    },
  };
}

async function udpEchoes(host: LabHost, address: string, port: number, count: number): Promise<number> {
  const result = await host.run(NODE, ["-e", UDP_CLIENT, address, String(port), String(count)]);
  assert.equal(result.code, 0, result.stderr);
  return Number(result.stdout.trim());
}

async function tcpEchoes(host: LabHost, address: string, port: number): Promise<boolean> {
  const result = await host.run(NODE, ["-e", TCP_CLIENT, address, String(port)]);
  return result.code === 0;
}

/** From this process: whether a TCP connection to address:port is echoed within 1.5 s. */
function tcpEchoesFromHere(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, address);
    const done = (ok: boolean) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1500);
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("hello"));
    socket.on("data", () => done(true));
  });
}

function labLinks(lab: NetworkLab): string[] {
  const block = (Number(lab.hostAddress.split(".")[3]) - 1) / 32;
  const names = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.split(": ")[1]?.split("@")[0] ?? "");
  return names.filter((name) => new RegExp(`^plab${block}(v\\d+)?$`).test(name));
}

const namespaces = () => execFileSync("ip", ["netns", "list"], { encoding: "utf8" });

describe("network lab", { skip: networkLabUnavailable() }, () => {
  let lab: NetworkLab;
  let alice: LabHost;
  let bob: LabHost;
  let here: Awaited<ReturnType<typeof echoServersHere>>;

  before(async () => {
    lab = await createNetworkLab();
    [alice, bob] = await Promise.all([lab.addHost("alice"), lab.addHost("bob")]);
    here = await echoServersHere(lab.hostAddress);
  });
  after(async () => {
    await here?.close();
    await lab?.close();
  });

  it("puts each host on its own address of a 198.51.100.0/27 shared with this machine", () => {
    const block = (Number(lab.hostAddress.split(".")[3]) - 1) / 32;
    assert.ok(Number.isInteger(block) && block >= 0 && block < 8, lab.hostAddress);
    for (const host of [alice, bob]) {
      const [, , , last] = host.address.split(".").map(Number) as [number, number, number, number];
      assert.ok(host.address.startsWith("198.51.100.") && Math.floor(last / 32) === block, host.address);
    }
    assert.notEqual(alice.address, bob.address);
  });

  it("lets both hosts reach UDP and TCP servers on the host address, and each other", async () => {
    for (const host of [alice, bob]) {
      assert.equal(await udpEchoes(host, lab.hostAddress, here.udpPort, 5), 5);
      assert.ok(await tcpEchoes(host, lab.hostAddress, here.tcpPort), `${host.name} reaches TCP on the host address`);
    }
    assert.ok(here.state.tcpPeers.includes(alice.address) && here.state.tcpPeers.includes(bob.address));
    const server = await echoServerIn(bob);
    try {
      assert.equal(await udpEchoes(alice, bob.address, server.port, 5), 5);
      assert.ok(await tcpEchoes(alice, bob.address, server.port));
    } finally {
      await server.stop();
    }
  });

  it("blocks UDP of one host while its TCP still works, until unblocked", async () => {
    await alice.block({ udp: true });
    try {
      assert.equal(await udpEchoes(alice, lab.hostAddress, here.udpPort, 5), 0);
      assert.ok(await tcpEchoes(alice, lab.hostAddress, here.tcpPort));
      assert.equal(await udpEchoes(bob, lab.hostAddress, here.udpPort, 5), 5, "the other host is not blocked");
    } finally {
      await alice.unblock();
    }
    assert.equal(await udpEchoes(alice, lab.hostAddress, here.udpPort, 5), 5);
  });

  it("blocks traffic to one address only", async () => {
    const server = await echoServerIn(bob);
    await alice.block({ toAddress: bob.address });
    try {
      assert.equal(await tcpEchoes(alice, bob.address, server.port), false);
      assert.ok(await tcpEchoes(alice, lab.hostAddress, here.tcpPort));
    } finally {
      await alice.unblock();
      await server.stop();
    }
  });

  it("rejects a bad block or impairment with a typed error and changes nothing", async () => {
    await assert.rejects(alice.block({ toAddress: "not an address" }), NetworkLabError);
    await assert.rejects(alice.impair({ lossPercent: 101 }), NetworkLabError);
    await assert.rejects(alice.impair({ delayMs: -1 }), NetworkLabError);
    await assert.rejects(lab.addHost("Bad Label!"), NetworkLabError);
    assert.equal(await udpEchoes(alice, lab.hostAddress, here.udpPort, 5), 5);
  });

  it("drops about 30% of 2000 datagrams each way with 30% loss, and none once cleared", async () => {
    await alice.impair({ lossPercent: 30 });
    try {
      const before = here.state.udpReceived;
      // Out of the host: what the server here received (the echoes back are lost separately).
      await udpEchoes(alice, lab.hostAddress, here.udpPort, 2000);
      const arrived = here.state.udpReceived - before;
      assert.ok(arrived >= 1200 && arrived <= 1600, `${arrived} of 2000 datagrams arrived out of the host`);
      // Into the host: datagrams sent from here to an echo server in the host.
      const server = await echoServerIn(alice);
      const socket = dgram.createSocket("udp4");
      await new Promise<void>((resolve) => socket.bind(0, lab.hostAddress, resolve));
      for (let i = 0; i < 2000; i++) {
        socket.send(`in ${i}`, server.port, alice.address);
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
      }
      await new Promise((r) => setTimeout(r, 300));
      socket.close();
      const received = await server.stop();
      assert.ok(received >= 1200 && received <= 1600, `${received} of 2000 datagrams arrived into the host`);
    } finally {
      await alice.clearImpairments();
    }
    const before = here.state.udpReceived;
    await udpEchoes(alice, lab.hostAddress, here.udpPort, 200);
    assert.equal(here.state.udpReceived - before, 200);
  });

  it(
    netemAvailable() ? "delays packets with netem" : "refuses delay and jitter without sch_netem, changing nothing",
    async () => {
      if (netemAvailable()) {
        await alice.impair({ delayMs: 100 });
        try {
          const start = performance.now();
          assert.ok(await tcpEchoes(alice, lab.hostAddress, here.tcpPort));
          // Connect and echo are two round trips of at least 2 x 100 ms each.
          assert.ok(performance.now() - start >= 400, "the delay shows in the round trips");
        } finally {
          await alice.clearImpairments();
        }
        return;
      }
      await assert.rejects(alice.impair({ lossPercent: 100, delayMs: 50 }), (error: unknown) => {
        assert.ok(error instanceof LabUnsupportedError);
        assert.equal(error.feature, "sch_netem");
        return true;
      });
      await assert.rejects(alice.impair({ jitterMs: 10 }), LabUnsupportedError);
      assert.equal(await udpEchoes(alice, lab.hostAddress, here.udpPort, 5), 5, "the loss was not applied");
    },
  );

  it("moves a host to a new address that works while the old one no longer answers", async () => {
    const server = await echoServerIn(bob);
    try {
      const old = bob.address;
      assert.ok(await tcpEchoesFromHere(old, server.port));
      const moved = await bob.changeAddress();
      assert.notEqual(moved, old);
      assert.equal(bob.address, moved);
      assert.ok(await tcpEchoesFromHere(moved, server.port), "the new address answers");
      assert.equal(await tcpEchoesFromHere(old, server.port), false, "the old address is gone");
      assert.ok(await tcpEchoes(bob, lab.hostAddress, here.tcpPort));
      assert.equal(here.state.tcpPeers.at(-1), moved, "the host's traffic comes from its new address");
    } finally {
      await server.stop();
    }
  });

  it("runs Chromium inside a host, so servers see the host's address", async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.socket.remoteAddress ?? "");
      res.end("hello from the lab");
    });
    await new Promise<void>((resolve) => server.listen(0, lab.hostAddress, resolve));
    const { chromium } = await import("playwright-core");
    // playwright-core gives every launch a fresh temporary --user-data-dir.
    const browser = await chromium.launch({
      executablePath: alice.chromiumPath,
      headless: true,
      args: [...CHROMIUM_HEADLESS_ARGS],
    });
    try {
      const page = await browser.newPage();
      const port = (server.address() as net.AddressInfo).port;
      await page.goto(`http://${lab.hostAddress}:${port}/`);
      assert.equal(await page.textContent("body"), "hello from the lab");
      assert.ok(seen.length > 0 && seen.every((address) => address === alice.address), seen.join(", "));
    } finally {
      await browser.close();
      server.close();
    }
  });

  it("gives two labs at once different subnets, and removes all of a lab on close", async () => {
    const other = await createNetworkLab();
    let otherHost: LabHost;
    try {
      const block = (lab: NetworkLab) => Math.floor(Number(lab.hostAddress.split(".")[3]) / 32);
      assert.notEqual(block(other), block(lab));
      otherHost = await other.addHost();
      const server = await echoServersHere(other.hostAddress);
      try {
        assert.ok(await tcpEchoes(otherHost, other.hostAddress, server.tcpPort));
      } finally {
        await server.close();
      }
    } finally {
      await other.close();
    }
    assert.ok(!namespaces().includes(otherHost.name), namespaces());
    assert.deepEqual(labLinks(other), []);
    await other.close(); // idempotent
  });

  it("reclaims the subnet of a process that died with its lab open, removing what it left", async () => {
    const testkit = import.meta.resolve("@parley/testkit");
    const script = `const { createNetworkLab } = await import(${JSON.stringify(testkit)});
      const lab = await createNetworkLab(); const host = await lab.addHost("orphan");
      console.log(host.name); process.kill(process.pid, "SIGKILL");`;
    let name = "";
    try {
      execFileSync(NODE, ["--input-type=module", "-e", script], { encoding: "utf8" });
    } catch (error) {
      name = String((error as { stdout?: string }).stdout).trim();
    }
    assert.match(name, /^plab\d-\d+-orphan$/);
    const next = await createNetworkLab();
    await next.close();
    assert.ok(!namespaces().includes(name), "creating a lab removed the dead process's namespace");
  });

  it("removes every namespace, veth and the bridge on close", async () => {
    await here.close();
    await lab.close();
    for (const host of [alice, bob]) assert.ok(!namespaces().includes(host.name), `${host.name} is gone`);
    assert.deepEqual(labLinks(lab), []);
    assert.ok(!execFileSync("ip", ["-o", "addr"], { encoding: "utf8" }).includes(`${lab.hostAddress}/`));
  });
});
