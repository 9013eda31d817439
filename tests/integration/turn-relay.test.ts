/**
 * A bot on a machine whose network drops all UDP (a network namespace with nft rules) calls a bot on
 * the server's machine: with TURN configured it reaches the relay through coturn over TCP and both
 * hear each other; without, its call ends as media_failed instead of going on in silence.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BotExit } from "@parley/cli";
import {
  type Coturn,
  coturnUnavailable,
  createNetworkLab,
  type LabHost,
  type NetworkLab,
  networkLabUnavailable,
  runBot,
  startCoturn,
  startTestServer,
  type TestServer,
  waitFor,
} from "@parley/testkit";
import { useBotCalls } from "./bot-calls.js";

const SECRET = "turn relay test secret 0123";
const { botArgs, botCall, assertHears } = useBotCalls("parley-turn-relay-");

describe("a bot behind a firewall that drops UDP", { skip: networkLabUnavailable() ?? coturnUnavailable() }, () => {
  let lab: NetworkLab;
  let firewalled: LabHost;
  let coturn: Coturn;
  let t: TestServer;

  before(async () => {
    lab = await createNetworkLab();
    firewalled = await lab.addHost("firewalled");
    await firewalled.block({ udp: true });
    coturn = await startCoturn({ address: lab.hostAddress, secret: SECRET });
  });
  after(async () => {
    await t?.stop();
    await coturn?.stop();
    await lab?.close();
  });

  it("gets two-way audio through coturn over TCP when the server hands out TURN credentials", async () => {
    t = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      turn: { urls: coturn.urls, secret: SECRET, ttlSeconds: 3600 },
    });
    const server = `${lab.hostAddress}:${t.server.port}`;
    const bots = await botCall(
      { user: "office", hz: 440, server },
      { user: "hotel", hz: 1000, server, wrap: firewalled.wrap },
    );
    assert.match(bots.caller.output(), /media connected \(TURN relay over tcp\)/);
    assert.match(bots.callee.output(), /media connected \(direct\)/);
    assertHears("office", 1000, bots);
    assertHears("hotel", 440, bots);
    // coturn relayed it: an allocation was made for the firewalled bot's user.
    assert.match(coturn.output(), /session \d+: (?:new, )?.*(?:ALLOCATE|allocation)/i);
    await t.stop();
  });

  it("ends the call as media_failed, not silence, when the server has no TURN server", async () => {
    t = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
    });
    const server = `${lab.hostAddress}:${t.server.port}`;
    const answer = runBot("answer", [...botArgs(server, "office2", 440), "--wait", "90"]);
    await waitFor(() => answer.output().includes("waiting for a call"), "office2 waiting", { timeoutMs: 20_000 });
    const call = runBot("call", [...botArgs(server, "hotel2", 1000), "--to", "office2", "--duration", "60"], {
      wrap: firewalled.wrap,
    });
    assert.equal(await call.exited, BotExit.FAILED, call.output());
    assert.match(call.output(), /ended: media_failed/);
    answer.child.kill();
    await answer.exited;
  });
});
