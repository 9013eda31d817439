/**
 * The web operator console (/admin) end to end: an operator signs in with headless Chromium,
 * watches two `parley` bots talk (live duration and media counters measured at the server), ends
 * their call from the page (both bots report the operator ended it), exports the audit log and
 * the call history as CSV, and kicks a user; a non-operator gets no operator data from the page
 * or the API. Writes the operator screenshots in docs/screenshots/.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  assertNoCspViolations,
  type BotRun,
  type BrowserUser,
  launchBrowserUser,
  loggedIn,
  runBot,
  startTestServer,
  type TestServer,
  tempDir,
  toneWav,
  waitFor,
} from "@parley/testkit";
import type { BrowserContext, Locator, Page } from "playwright-core";
import {
  button,
  E2E_PASSWORD,
  expectConnected,
  expectEventually,
  expectGone,
  expectText,
  expectVisible,
  fillSignIn,
  type Person,
  SIGN_IN_TIMEOUT,
  screenshot,
  seconds,
} from "./helpers.js";

const OLIVIA: Person = { username: "olivia", displayName: "Olivia Operator" };
const NORBERT: Person = { username: "norbert", displayName: "Norbert Normal" };
const CALLER = "bot-caller";
const CALLEE = "bot-answer";

let t: TestServer;
let dir: string;
let operator: BrowserUser;
let other: { context: BrowserContext; page: Page } | undefined;
const bots: BotRun[] = [];

before(
  async () => {
    t = await startTestServer();
    dir = tempDir("parley-e2e-operator-");
    for (const [person, extra] of [
      [OLIVIA, ["--operator"]],
      [NORBERT, []],
    ] as const) {
      const created = await t.server.commands.run([
        "users",
        "add",
        person.username,
        "--password",
        E2E_PASSWORD,
        "--display-name",
        person.displayName,
        ...extra,
      ]);
      assert.equal(created.exitCode, 0, created.output);
    }
    operator = await launchBrowserUser(toneWav(dir, 440), { viewport: { width: 1440, height: 1000 } });
  },
  { timeout: 30_000 },
);

after(
  async () => {
    if (operator?.problems.length) console.log(`operator's browser reported:\n  ${operator.problems.join("\n  ")}`);
    for (const bot of bots) if (bot.child.exitCode === null) bot.child.kill();
    await other?.context.close().catch(() => {});
    await operator?.close();
    await t?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (operator) assertNoCspViolations(operator, "the operator's browser");
  },
  { timeout: 30_000 },
);

/** Opens /admin and signs in through the shared sign-in form. */
async function signInToConsole(page: Page, person: Person): Promise<void> {
  await page.goto(`${t.server.httpUrl}/admin`);
  await fillSignIn(page, person);
  await button(page, "Sign in").click();
  await expectConnected(page, SIGN_IN_TIMEOUT);
}

function region(page: Page, name: RegExp): Locator {
  return page.getByRole("region", { name });
}

/** A minimal RFC 4180 reader (quoted cells, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(cell);
      cell = "";
    } else if (ch === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else if (ch !== "\r") cell += ch;
  }
  if (cell || row.length) rows.push([...row, cell]);
  return rows;
}

/** Clicks the export button and returns the downloaded file's name and parsed rows. */
async function exportCsv(page: Page, label: string): Promise<{ name: string; rows: string[][] }> {
  const [download] = await Promise.all([page.waitForEvent("download"), button(page, label).click()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), rows: parseCsv(fs.readFileSync(file, "utf8")) };
}

/** Packet counters of the call's legs, as the page shows them. */
async function legPackets(call: Locator): Promise<number[]> {
  const legs = call.getByTestId("leg");
  const counts: number[] = [];
  for (let i = 0; i < (await legs.count()); i++) {
    counts.push(Number(await legs.nth(i).getAttribute("data-packets-in")));
    counts.push(Number(await legs.nth(i).getAttribute("data-packets-out")));
  }
  return counts;
}

describe("operator console", { timeout: 120_000 }, () => {
  it("shows two bots' call live, with a ticking duration and growing media counters, and ends it", async () => {
    const tone = (hz: number) => ["--play", toneWav(dir, hz)];
    const common = (user: string) => ["--server", t.url, "--user", user, "--password", E2E_PASSWORD, "--register"];
    const callee = runBot("answer", [...common(CALLEE), ...tone(700), "--wait", "90"]);
    bots.push(callee);
    await waitFor(() => callee.output().includes("waiting for a call"), "the answering bot", { timeoutMs: 20_000 });
    await signInToConsole(operator.page, OLIVIA);
    const caller = runBot("call", [...common(CALLER), ...tone(1000), "--to", CALLEE]);
    bots.push(caller);
    await waitFor(() => callee.output().includes("answered"), "the bots talking", { timeoutMs: 20_000 });

    const page = operator.page;
    const call = page.getByTestId("live-call").filter({ hasText: `${CALLER}, ${CALLEE}` });
    await expectVisible(call, 15_000);
    await expectEventually(
      () => call.getAttribute("data-state"),
      (state) => state === "active",
      "the call to be active",
    );
    // Live without reloads: the duration ticks and the counters measured at the server grow.
    const duration = call.getByTestId("call-duration");
    const first = seconds(await expectText(duration, /\d+:\d\d/));
    await expectEventually(
      async () => seconds(await duration.innerText({ timeout: 1000 })),
      (now) => now >= first + 2,
      "the call duration to advance",
    );
    const packets = await expectEventually(
      () => legPackets(call),
      (counts) => counts.length === 4 && counts.every((n) => n > 0),
      "both legs to count packets in and out",
      15_000,
    );
    await expectEventually(
      () => legPackets(call),
      (later) => later.every((n, i) => n > packets[i]!),
      "the packet counters to grow",
    );
    // Each leg's quality measured at the server: loss and jitter of what it receives, and the round
    // trip from the bot's receiver reports on the relay's sender reports.
    const legs = call.getByTestId("leg");
    for (let i = 0; i < 2; i++) await expectText(legs.nth(i), /lost \d+ · jitter [\d.]+ ms · RTT [\d.]+ ms/, 15_000);
    // The operator sees the bots' addresses; each bot shows in the users table as in a call.
    for (const bot of [CALLER, CALLEE]) {
      const row = page.locator(`[data-testid="operator-user"][data-username="${bot}"]`);
      await expectText(row.getByTestId("device-address"), "127.0.0.1");
      await expectText(row, "in a call");
    }
    await expectText(page.getByTestId("server-calls"), "1");
    await screenshot(page, "operator-console");

    await button(page, `End call between ${CALLER} and ${CALLEE}`).click();
    const dialog = page.getByRole("dialog", { name: "Please confirm" });
    await expectText(dialog, `End the call between ${CALLER} and ${CALLEE} for everyone in it?`);
    await screenshot(page, "operator-confirm");
    await dialog.getByRole("button", { name: "Confirm" }).click();
    await expectText(page.getByTestId("operator-result"), `Ended the call between ${CALLER} and ${CALLEE}.`);
    await expectGone(call);

    // Both bots report the call ended by the operator (exit 7: ended by the operator or the server).
    assert.equal(await caller.exited, 7, caller.output());
    assert.equal(await callee.exited, 7, callee.output());
    for (const bot of [caller, callee]) assert.match(bot.output(), /ended: operator \(answered\)/);
  });

  it("exports the audit log and the call history as CSV files that parse", async () => {
    const page = operator.page;
    const audit = region(page, /^Audit log/);
    await audit.getByLabel("Action").selectOption("admin.hangup");
    await audit.getByRole("button", { name: "Search" }).click();
    await expectVisible(audit.locator('tr[data-action="admin.hangup"]'));
    const auditCsv = await exportCsv(page, "Export audit log as CSV");
    assert.match(auditCsv.name, /^parley-audit-.*\.csv$/);
    assert.deepEqual(auditCsv.rows[0], ["time", "action", "actor", "user", "address", "detail"]);
    const hangups = auditCsv.rows.slice(1);
    assert.ok(hangups.length >= 1 && hangups.every((r) => r[1] === "admin.hangup"), JSON.stringify(hangups));
    assert.equal(hangups[0]?.[2], "olivia");
    assert.ok(JSON.parse(hangups[0]?.[5] ?? "{}").participants.includes(CALLEE), hangups[0]?.[5]);

    const history = region(page, /^Call history/);
    await history.getByLabel("User").fill(CALLEE);
    await history.getByRole("button", { name: "Search" }).click();
    await expectVisible(history.locator('tr[data-outcome="answered"]'));
    const historyCsv = await exportCsv(page, "Export call history as CSV");
    assert.match(historyCsv.name, /^parley-calls-.*\.csv$/);
    const [header, ...calls] = historyCsv.rows;
    assert.deepEqual(header, [
      "call",
      "caller",
      "callee",
      "placed",
      "answered",
      "ended",
      "duration_s",
      "outcome",
      "end_reason",
    ]);
    assert.equal(calls.length, 1);
    assert.deepEqual(
      [calls[0]?.[1], calls[0]?.[2], calls[0]?.[7], calls[0]?.[8]],
      [CALLER, CALLEE, "answered", "operator"],
    );
    assert.ok(Number(calls[0]?.[6]) >= 2, `duration ${calls[0]?.[6]} s`);
    await audit.scrollIntoViewIfNeeded();
    await screenshot(page, "operator-audit");
  });

  it("gives a non-operator no operator data from the page or the API, and lets the operator kick them", async () => {
    other = { context: await operator.browser.newContext(), page: undefined as unknown as Page };
    await operator.watch(other.context);
    other.page = await other.context.newPage();
    await signInToConsole(other.page, NORBERT);
    await expectText(other.page.getByTestId("not-operator"), "Your account is not an operator.");
    // Wait past a few feed intervals: still nothing of the operator's view.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const text = await other.page.locator("body").innerText();
    assert.doesNotMatch(text, /127\.0\.0\.1|Live calls|Audit log|olivia/);
    assert.equal(await other.page.getByTestId("live-call").count(), 0);
    const api = await loggedIn(t.url, NORBERT.username, E2E_PASSWORD);
    for (const type of ["operator.snapshot", "operator.subscribe", "operator.audit", "operator.callHistory"]) {
      const reply = await api.client.request(type);
      assert.equal(reply.ok ? "ok" : reply.error.code, "NOT_OPERATOR", type);
    }
    api.client.close();

    // Back on the operator's page: kick Norbert, with confirmation and the result shown.
    const page = operator.page;
    const row = page.locator(`[data-testid="operator-user"][data-username="${NORBERT.username}"]`);
    await expectText(row.getByTestId("device-address"), "127.0.0.1");
    // The API connection just closed: the row drops it when the server's presence update arrives.
    await expectEventually(
      () => row.getByTestId("device").count(),
      (n) => n === 1,
      "Norbert to show only the console's device",
    );
    await button(page, `Kick ${NORBERT.username}`).click();
    await page.getByRole("dialog", { name: "Please confirm" }).getByRole("button", { name: "Cancel" }).click();
    await expectGone(page.getByRole("dialog"));
    assert.equal(await row.getByTestId("device").count(), 1, "cancel changed nothing");
    await button(page, `Kick ${NORBERT.username}`).click();
    await page.getByRole("dialog", { name: "Please confirm" }).getByRole("button", { name: "Confirm" }).click();
    await expectText(page.getByTestId("operator-result"), `Kicked ${NORBERT.username} (1 device(s)).`);
    await expectText(other.page.getByTestId("connection-status"), "Disconnected");
    await expectEventually(
      () => row.getByTestId("device").count(),
      (n) => n === 0,
      "Norbert to show no device",
    );
  });

  it("disables and enables an account, resets a password and turns self-signup off and on, each confirmed", async () => {
    const page = operator.page;
    const confirm = () =>
      page.getByRole("dialog", { name: "Please confirm" }).getByRole("button", { name: "Confirm" }).click();
    const row = page.locator(`[data-testid="operator-user"][data-username="${NORBERT.username}"]`);

    await button(page, `Disable ${NORBERT.username}`).click();
    await confirm();
    await expectText(page.getByTestId("operator-result"), `${NORBERT.username} is disabled.`);
    await expectEventually(
      () => row.getAttribute("data-disabled"),
      (v) => v === "true",
      "the row to show the account disabled",
    );
    await button(page, `Enable ${NORBERT.username}`).click();
    await confirm();
    await expectText(page.getByTestId("operator-result"), `${NORBERT.username} is enabled.`);

    await button(page, `Reset password of ${NORBERT.username}`).click();
    await confirm(); // the new-password field left empty: a random one
    const result = await expectText(page.getByTestId("operator-result"), /New password of norbert: \S{12,}/);
    const password = /: (\S+)$/.exec(result.trim())?.[1] ?? "";
    (await loggedIn(t.url, NORBERT.username, password)).client.close();

    const signup = page.getByTestId("server-signup");
    await button(page, "Turn self-signup off").click();
    await confirm();
    await expectText(page.getByTestId("operator-result"), "Self-signup is off.");
    await expectEventually(
      () => signup.getAttribute("data-enabled"),
      (v) => v === "false",
      "the server panel to show signup off",
    );
    await button(page, "Turn self-signup on").click();
    await confirm();
    await expectText(page.getByTestId("operator-result"), "Self-signup is on.");

    const audit = await t.server.operator.audit({ username: NORBERT.username });
    assert.deepEqual(
      audit.filter((e) => e.actor === OLIVIA.username).map((e) => e.action),
      ["admin.kick", "admin.disable", "admin.enable", "admin.reset_password"],
    );
  });

  it("drops the operator data from the open page as soon as the role is revoked", async () => {
    const page = operator.page;
    await expectVisible(region(page, /^Live calls/));
    const revoked = await t.server.commands.run(["operator", "revoke", OLIVIA.username]);
    assert.equal(revoked.exitCode, 0, revoked.output);
    await expectText(page.getByTestId("not-operator"), "Your account is not an operator.");
    await expectGone(region(page, /^Live calls/));
    assert.doesNotMatch(await page.locator("body").innerText(), /127\.0\.0\.1/);
    // Granted again: the page subscribes by itself, no reload.
    await t.server.commands.run(["operator", "grant", OLIVIA.username]);
    await expectVisible(region(page, /^Live calls/));
    await expectGone(page.getByTestId("not-operator"));
  });
});
