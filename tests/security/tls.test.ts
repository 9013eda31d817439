/**
 * HTTPS and WSS built in: `--self-signed` makes an ECDSA certificate in the data dir on the first
 * start and reuses it; `--tls-cert/--tls-key` serve the operator's files, re-read on SIGHUP without
 * dropping open connections. Clients here trust only the server's certificate (`ca`), so each
 * check fails unless the server really speaks TLS with that certificate. Bad files stop the start
 * with exit code 2 and a message naming the file.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { after, describe, it } from "node:test";
import tls from "node:tls";
import { generateSelfSigned } from "@parley/server";
import {
  RawClient,
  runParley,
  type ServerProcess,
  serverProcessArgs,
  spawnServer,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";

const running = new Set<ServerProcess>();

async function start(dataDir: string, args: string[]): Promise<ServerProcess> {
  const server = await spawnServer(dataDir, args);
  running.add(server);
  return server;
}

async function stop(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  await server.exited;
  running.delete(server);
}

after(async () => {
  for (const server of running) await stop(server);
});

/** GET over HTTPS trusting only `ca`: the status and body. */
function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = "";
        res.on("data", (chunk) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on("error", reject);
  });
}

function portOf(server: ServerProcess): number {
  return Number(new URL(server.httpUrl).port);
}

function bannerFingerprint(server: ServerProcess): string | undefined {
  return /Certificate SHA-256 fingerprint: (\S+)/.exec(server.output())?.[1];
}

describe("HTTPS with a self-signed certificate", () => {
  const dataDir = tempDir();
  const certFile = path.join(dataDir, "tls-cert.pem");
  const keyFile = path.join(dataDir, "tls-key.pem");

  it("serves the health check over HTTPS to a client that trusts only the certificate made in the data dir", async () => {
    const server = await start(dataDir, ["--self-signed"]);
    assert.match(server.httpUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(server.url, /^wss:\/\//);
    const cert = fs.readFileSync(certFile, "utf8");
    const reply = await httpsGet(`${server.httpUrl}/healthz`, cert);
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body).status, "ok");
    const stranger = await generateSelfSigned({ dns: ["localhost"], ips: ["127.0.0.1"] });
    await assert.rejects(
      httpsGet(`${server.httpUrl}/healthz`, stranger.cert),
      /self-signed certificate/,
      "a client that trusts another certificate refuses this one",
    );
  });

  it("makes an ECDSA P-256 certificate for localhost and 127.0.0.1, with an owner-only key, valid 825 days", () => {
    const cert = new X509Certificate(fs.readFileSync(certFile));
    const names = cert.subjectAltName ?? "";
    assert.match(names, /DNS:localhost/);
    assert.match(names, /IP Address:127\.0\.0\.1/);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (24 * 3600 * 1000);
    assert.ok(Math.abs(days - 825) < 1, `valid ${days} days`);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
  });

  it("prints the certificate's SHA-256 fingerprint in the start banner", () => {
    const [server] = running;
    const expected = new X509Certificate(fs.readFileSync(certFile)).fingerprint256;
    assert.equal(bannerFingerprint(server!), expected);
  });

  it("lets a client register and log in over wss:// trusting only that certificate", async () => {
    const [server] = running;
    const ca = fs.readFileSync(certFile, "utf8");
    const first = await RawClient.greeted(server!.url, { ca });
    await first.call("auth.register", { username: "alice", password: TEST_PASSWORD });
    first.ws.close();
    const second = await RawClient.greeted(server!.url, { ca });
    const login = await second.call<{ token: string }>("auth.login", { username: "alice", password: TEST_PASSWORD });
    assert.ok(login.token);
    second.ws.close();
  });

  it("reuses the same certificate on the next start", async () => {
    const [server] = running;
    const before = fs.readFileSync(certFile, "utf8");
    const fingerprint = bannerFingerprint(server!);
    await stop(server!);
    const again = await start(dataDir, ["--self-signed"]);
    assert.equal(fs.readFileSync(certFile, "utf8"), before);
    assert.equal(bannerFingerprint(again), fingerprint);
    assert.equal(await servedFingerprint(portOf(again)), fingerprint);
    await stop(again);
  });
});

describe("HTTPS with the operator's certificate files", () => {
  it("re-reads the files on SIGHUP: open connections stay, new ones see the new certificate, a bad file keeps the old", async () => {
    const dataDir = tempDir();
    const certFile = path.join(dataDir, "cert.pem");
    const keyFile = path.join(dataDir, "key.pem");
    const names = { dns: ["localhost"], ips: ["127.0.0.1"] };
    const first = await generateSelfSigned(names);
    const second = await generateSelfSigned(names);
    fs.writeFileSync(certFile, first.cert);
    fs.writeFileSync(keyFile, first.key, { mode: 0o600 });
    const server = await start(dataDir, ["--tls-cert", certFile, "--tls-key", keyFile]);
    const firstFingerprint = new X509Certificate(first.cert).fingerprint256;
    const secondFingerprint = new X509Certificate(second.cert).fingerprint256;
    assert.equal(await servedFingerprint(portOf(server)), firstFingerprint);

    const client = await RawClient.greeted(server.url, { ca: first.cert });
    await client.call("auth.register", { username: "bob", password: TEST_PASSWORD });

    fs.writeFileSync(certFile, second.cert);
    fs.writeFileSync(keyFile, second.key);
    server.child.kill("SIGHUP");
    await waitFor(
      async () => (await servedFingerprint(portOf(server))) === secondFingerprint,
      "new TLS connections are shown the new certificate",
    );
    assert.equal(client.ws.readyState, client.ws.OPEN, "the open connection stays");
    await client.call("presence.set", { status: "busy" });
    const fresh = await RawClient.greeted(server.url, { ca: second.cert });
    fresh.ws.close();

    fs.writeFileSync(certFile, "not a certificate\n");
    server.child.kill("SIGHUP");
    const log = path.join(dataDir, "parley.log");
    await waitFor(() => fs.readFileSync(log, "utf8").includes("not reloaded"), "the failed reload is logged");
    assert.match(fs.readFileSync(log, "utf8"), /cert\.pem is not a PEM certificate/);
    assert.equal(await servedFingerprint(portOf(server)), secondFingerprint, "the previous certificate stays");
    assert.equal(client.ws.readyState, client.ws.OPEN);
    client.ws.close();
    await stop(server);
  });
});

describe("Unusable certificate files", () => {
  const dir = tempDir();
  const names = { dns: ["localhost"], ips: ["127.0.0.1"] };

  async function startWith(certFile: string, keyFile: string) {
    const args = serverProcessArgs(tempDir()).slice(1);
    return runParley([...args, "--tls-cert", certFile, "--tls-key", keyFile]);
  }

  it("stops the start with exit code 2 when the certificate file is missing, naming it", async () => {
    const { key } = await generateSelfSigned(names);
    const keyFile = path.join(dir, "missing-case.key");
    fs.writeFileSync(keyFile, key);
    const certFile = path.join(dir, "nowhere.pem");
    const result = await startWith(certFile, keyFile);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${certFile}: no such file`));
  });

  it("stops the start with exit code 2 when the certificate is not PEM, naming it", async () => {
    const { key } = await generateSelfSigned(names);
    const certFile = path.join(dir, "garbage.pem");
    const keyFile = path.join(dir, "garbage-case.key");
    fs.writeFileSync(certFile, "hello\n");
    fs.writeFileSync(keyFile, key);
    const result = await startWith(certFile, keyFile);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${certFile} is not a PEM certificate`));
  });

  it("stops the start with exit code 2 when the key does not match the certificate, naming both", async () => {
    const one = await generateSelfSigned(names);
    const other = await generateSelfSigned(names);
    const certFile = path.join(dir, "one.pem");
    const keyFile = path.join(dir, "other.key");
    fs.writeFileSync(certFile, one.cert);
    fs.writeFileSync(keyFile, other.key);
    const result = await startWith(certFile, keyFile);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${keyFile} does not match the certificate in ${certFile}`));
  });

  it("stops the start with exit code 2 when the key file is not a key", async () => {
    const one = await generateSelfSigned(names);
    const certFile = path.join(dir, "good.pem");
    const keyFile = path.join(dir, "cert-as-key.pem");
    fs.writeFileSync(certFile, one.cert);
    fs.writeFileSync(keyFile, one.cert);
    const result = await startWith(certFile, keyFile);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${keyFile} is not a PEM private key`));
  });
});

describe("Plain HTTP redirect", () => {
  /** A plain HTTP GET of `url` with `host` as its Host header, not following redirects. */
  function httpGet(url: string, host: string): Promise<{ status: number; location: string | undefined }> {
    return new Promise((resolve, reject) => {
      http
        .get(url, { headers: { host } }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
        })
        .on("error", reject);
    });
  }

  it("sends plain HTTP requests to the same host and path over HTTPS (308), which then answers", async () => {
    const dataDir = tempDir();
    const server = await start(dataDir, ["--self-signed", "--http-redirect-port", "0"]);
    const redirectPort = Number(/Plain HTTP on port (\d+) redirects to HTTPS/.exec(server.output())?.[1]);
    assert.ok(redirectPort > 0, `the banner names the redirect port: ${server.output()}`);
    const reply = await httpGet(`http://127.0.0.1:${redirectPort}/admin?tab=calls`, `127.0.0.1:${redirectPort}`);
    assert.equal(reply.status, 308);
    assert.equal(reply.location, `https://127.0.0.1:${portOf(server)}/admin?tab=calls`);
    const ca = fs.readFileSync(path.join(dataDir, "tls-cert.pem"), "utf8");
    const followed = await httpsGet(reply.location!, ca);
    assert.equal(followed.status, 200);
    // A Host header that is not a plain name or address is not echoed into the redirect.
    const odd = await httpGet(`http://127.0.0.1:${redirectPort}/`, "evil.test/path@x");
    assert.equal(odd.status, 308);
    assert.match(odd.location ?? "", /^https:\/\/127\.0\.0\.1:\d+\/$/);
    await stop(server);
  });

  it("stops the start with exit code 2 when asked to redirect without HTTPS", async () => {
    const args = serverProcessArgs(tempDir()).slice(1);
    const result = await runParley([...args, "--http-redirect-port", "0"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--http-redirect-port needs HTTPS/);
  });
});

describe("Reload without TLS", () => {
  it("keeps a plain HTTP server running on SIGHUP (a systemd reload), saying there is nothing to reload", async () => {
    const dataDir = tempDir();
    const server = await start(dataDir, []);
    server.child.kill("SIGHUP");
    const log = path.join(dataDir, "parley.log");
    const deadline = Date.now() + 5000;
    while (!(fs.existsSync(log) && fs.readFileSync(log, "utf8").includes("no TLS certificate to reload"))) {
      assert.ok(Date.now() < deadline, "the server logged the SIGHUP");
      assert.equal(server.child.exitCode, null, `the server stopped on SIGHUP: ${server.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const health = await fetch(`${server.httpUrl}/health`);
    assert.equal(health.status, 200);
    assert.equal(server.child.exitCode, null);
    await stop(server);
  });
});
