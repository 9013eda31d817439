#!/usr/bin/env node
/**
 * Builds the native media data plane (parley-data-plane.node) with the system C compiler, without
 * node-gyp: Node-API headers from the `node-api-headers` package, OpenSSL 3's libcrypto from the
 * system for SRTP (Debian: libssl-dev; in Node's process the addon's calls bind to the OpenSSL Node
 * itself exports). It never fails the install: when it cannot build (no compiler, no OpenSSL
 * headers, a compile error) it prints one line saying why, leaves no addon behind (a stale one is
 * removed) and exits 0; the server then runs its JavaScript data plane and logs why once.
 *
 * Options: --out <dir> (or PARLEY_NATIVE_BUILD_DIR) for the output directory (default: build/ next
 * to this file); CC for the compiler (default: cc). It skips the build when the addon is newer
 * than every source.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ADDON = "parley-data-plane.node";

function option(name) {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

const outDir = path.resolve(option("--out") ?? process.env.PARLEY_NATIVE_BUILD_DIR ?? path.join(HERE, "build"));
const output = path.join(outDir, ADDON);
const compiler = process.env.CC || "cc";

/** Ends the build without an addon, saying why in one line. */
function notBuilt(why) {
  fs.rmSync(output, { force: true });
  process.stderr.write(`parley: native data plane not built: ${why}\n`);
  process.exit(0);
}

function firstLine(text) {
  return (
    String(text)
      .split("\n")
      .map((line) => line.trim())
      .find((line) => /error/i.test(line)) ??
    String(text).split("\n")[0]?.trim() ??
    ""
  );
}

const sources = fs
  .readdirSync(HERE)
  .filter((name) => name.endsWith(".c"))
  .sort()
  .map((name) => path.join(HERE, name));
const inputs = [
  ...sources,
  ...fs
    .readdirSync(HERE)
    .filter((name) => name.endsWith(".h"))
    .map((name) => path.join(HERE, name)),
  fileURLToPath(import.meta.url),
];

if (process.platform !== "linux") notBuilt(`it needs Linux (recvmmsg, epoll); this is ${process.platform}`);

let headers;
try {
  const require = createRequire(import.meta.url);
  headers = path.join(path.dirname(require.resolve("node-api-headers/package.json")), "include");
} catch {
  notBuilt("the node-api-headers package is not installed");
}

if (fs.existsSync(output)) {
  const built = fs.statSync(output).mtimeMs;
  if (inputs.every((file) => fs.statSync(file).mtimeMs < built)) process.exit(0);
}

const probe = spawnSync(compiler, ["--version"], { encoding: "utf8" });
if (probe.error || probe.status !== 0) notBuilt(`no C compiler (${compiler}) found`);

const openssl = spawnSync(compiler, ["-E", "-x", "c", "-", "-o", "/dev/null"], {
  input:
    "#include <openssl/evp.h>\n#include <openssl/sha.h>\n#if OPENSSL_VERSION_MAJOR < 3\n#error OpenSSL 3 needed\n#endif\n",
  encoding: "utf8",
});
if (openssl.error || openssl.status !== 0) {
  notBuilt("OpenSSL 3's headers are missing (Debian: apt install libssl-dev)");
}

fs.mkdirSync(outDir, { recursive: true });
const temporary = path.join(outDir, `.${ADDON}.${process.pid}.tmp`);
const compile = spawnSync(
  compiler,
  [
    "-std=c11",
    "-O2",
    "-fPIC",
    "-shared",
    "-pthread",
    "-fvisibility=hidden",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    `-I${headers}`,
    ...sources,
    "-lcrypto",
    "-lm",
    "-o",
    temporary,
  ],
  { encoding: "utf8" },
);
if (compile.error || compile.status !== 0) {
  fs.rmSync(temporary, { force: true });
  notBuilt(`the compile failed: ${firstLine(compile.stderr || compile.error?.message || "")}`);
}
fs.renameSync(temporary, output);
