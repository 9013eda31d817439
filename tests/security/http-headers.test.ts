/**
 * HTTP hardening: every response of the one HTTP port (the softphone, /admin, hashed assets,
 * /healthz, /metrics, a 404, refused WebSocket upgrades) carries a strict Content-Security-Policy
 * (no inline script, frame-ancestors 'none'), nosniff, no-referrer, X-Frame-Options DENY, COOP and
 * a Permissions-Policy; and the real softphone and operator console run in Chromium under that
 * policy without a single violation, while an injected inline script is refused.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type BrowserUser,
  launchBrowserUser,
  startTestServer,
  type TestServer,
  tempDir,
  toneWav,
  WEB_ROOT,
  waitFor,
} from "@parley/testkit";
import {
  button,
  E2E_PASSWORD,
  expectConnected,
  expectVisible,
  fillSignIn,
  nav,
  registerThroughUi,
} from "../e2e/helpers.js";

let t: TestServer;
let dir: string;
let browser: BrowserUser | undefined;

before(async () => {
  t = await startTestServer();
  dir = tempDir("parley-csp-");
});

after(async () => {
  if (browser?.problems.length) console.log(`browser reported:\n  ${browser.problems.join("\n  ")}`);
  await browser?.close();
  await t?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** One request on a fresh connection; a refused WebSocket upgrade answers with a plain response too. */
function request(pathname: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${t.server.httpUrl}${pathname}`, { headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on("upgrade", () => reject(new Error(`${pathname} was upgraded`)));
    req.on("error", reject);
    req.end();
  });
}

const UPGRADE = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13" };

/** The built client's hashed script, as index.html names it. */
function assetPath(): string {
  const html = fs.readFileSync(path.join(WEB_ROOT, "index.html"), "utf8");
  const match = /src="(\/assets\/[^"]+\.js)"/.exec(html);
  assert.ok(match, "index.html loads a script from /assets/");
  return match[1]!;
}

function directives(csp: string): Map<string, string> {
  return new Map(
    csp
      .split(";")
      .map((part) => part.trim())
      .filter(Boolean)
      .map((part) => {
        const [name, ...values] = part.split(/\s+/);
        return [name!, values.join(" ")] as const;
      }),
  );
}

function assertHardened(what: string, headers: http.IncomingHttpHeaders): void {
  const csp = headers["content-security-policy"];
  assert.equal(typeof csp, "string", `${what} has a Content-Security-Policy`);
  const policy = directives(csp as string);
  assert.equal(policy.get("default-src"), "'self'", `${what}: default-src`);
  assert.equal(policy.get("script-src"), "'self'", `${what}: scripts only from the server, none inline`);
  assert.equal(policy.get("style-src"), "'self'", `${what}: styles only from the server, none inline`);
  assert.equal(policy.get("frame-ancestors"), "'none'", `${what}: never framed`);
  assert.equal(policy.get("object-src"), "'none'", `${what}: object-src`);
  assert.equal(policy.get("base-uri"), "'none'", `${what}: base-uri`);
  assert.ok(!(csp as string).includes("unsafe-"), `${what}: nothing unsafe in ${csp}`);
  assert.equal(headers["x-content-type-options"], "nosniff", `${what}: nosniff`);
  assert.equal(headers["referrer-policy"], "no-referrer", `${what}: no-referrer`);
  assert.equal(headers["x-frame-options"], "DENY", `${what}: X-Frame-Options`);
  assert.equal(headers["cross-origin-opener-policy"], "same-origin", `${what}: COOP`);
  assert.match(String(headers["permissions-policy"]), /(^|, )microphone=\(self\)(,|$)/, `${what}: microphone for self`);
  assert.match(String(headers["permissions-policy"]), /(^|, )camera=\(\)(,|$)/, `${what}: no camera`);
}

describe("HTTP security headers", { timeout: 120_000 }, () => {
  it("puts the security headers on the softphone, /admin, assets, /healthz, /metrics and a 404", async () => {
    const cases: [string, string, number, RegExp][] = [
      ["the softphone", "/", 200, /^text\/html/],
      ["the operator page", "/admin", 200, /^text\/html/],
      ["a hashed asset", assetPath(), 200, /^text\/javascript/],
      ["the health check", "/healthz", 200, /^application\/json/],
      ["the metrics", "/metrics", 200, /^text\/plain/],
      ["a missing file", "/assets/missing-0000.js", 404, /^application\/json/],
    ];
    for (const [what, pathname, status, type] of cases) {
      const reply = await request(pathname);
      assert.equal(reply.status, status, `${what} (${pathname})`);
      assert.match(String(reply.headers["content-type"]), type, `${what} (${pathname})`);
      assertHardened(`${what} (${pathname})`, reply.headers);
    }
  });

  it("puts the security headers on refused WebSocket upgrades (wrong path, foreign origin)", async () => {
    const key = { "sec-websocket-key": Buffer.alloc(16, 1).toString("base64") };
    const wrongPath = await request("/not-signaling", { ...UPGRADE, ...key });
    assert.equal(wrongPath.status, 404);
    assertHardened("an upgrade on the wrong path", wrongPath.headers);
    const foreign = await request("/ws", { ...UPGRADE, ...key, origin: "http://evil.example" });
    assert.equal(foreign.status, 403);
    assertHardened("an upgrade from a foreign origin", foreign.headers);
  });

  it("runs the softphone and the operator console in Chromium with no CSP violation", async () => {
    const created = await t.server.commands.run([
      "users",
      "add",
      "olga",
      "--password",
      E2E_PASSWORD,
      "--display-name",
      "Olga",
      "--operator",
    ]);
    assert.equal(created.exitCode, 0, created.output);
    browser = await launchBrowserUser(toneWav(dir, 440));
    const page = browser.page;

    // The softphone: sign-in screen, registration, the signed-in shell with its avatars (React style props).
    await registerThroughUi(page, t.server.httpUrl, { username: "sasha", displayName: "Sasha" });
    await expectVisible(nav(page, "Contacts"));
    await nav(page, "History").click();
    await nav(page, "Account").click();

    // The operator console, signed in, in a second context of the same browser.
    const context = await browser.browser.newContext();
    await browser.watch(context);
    const admin = await context.newPage();
    await admin.goto(`${t.server.httpUrl}/admin`);
    await fillSignIn(admin, { username: "olga", displayName: "Olga" });
    await button(admin, "Sign in").click();
    await expectConnected(admin);
    await expectVisible(admin.getByTestId("server-calls"));
    await expectVisible(admin.getByRole("region", { name: /^Audit log/ }));
    await context.close();

    assert.deepEqual(browser.cspViolations, [], "no Content Security Policy violation");
  });

  it("refuses a script injected inline into the page, and the test kit reports the violation", async () => {
    assert.ok(browser, "the browser of the previous test");
    const page = browser.page;
    await page.goto(t.server.httpUrl);
    const before = browser.cspViolations.length;
    const problemsBefore = browser.problems.length;
    // What an XSS would do: add an inline script; under the CSP it never runs.
    await page
      .evaluate(() => {
        const dom = globalThis as unknown as {
          document: {
            createElement(tag: string): { textContent: string };
            body: { append(node: unknown): void };
          };
        };
        const script = dom.document.createElement("script");
        script.textContent = "globalThis.injected = true;";
        dom.document.body.append(script);
      })
      .catch(() => {});
    const ran = await page.evaluate(() => (globalThis as unknown as { injected?: boolean }).injected === true);
    assert.equal(ran, false, "the inline script did not run");
    const violations = await waitFor(
      () => (browser!.cspViolations.length > before ? browser!.cspViolations.slice(before) : undefined),
      "the CSP violation to be reported",
    );
    assert.match(violations.join("\n"), /script-src/);
    // The violation is the point of this test; the others must have none.
    browser.cspViolations.length = before;
    browser.problems.length = problemsBefore;
  });
});
