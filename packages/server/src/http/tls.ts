import crypto, { webcrypto, X509Certificate } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

/** Where HTTPS gets its certificate: PEM files, or one the server makes itself in the data dir. */
export type TlsConfig = { certFile: string; keyFile: string } | { selfSigned: true };

/** A certificate (chain allowed) and its private key, checked to belong together. */
export interface TlsCredentials {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** SHA-256 fingerprint of the leaf certificate, as browsers show it (AB:CD:...). */
  fingerprint256: string;
}

/** A certificate or key file that cannot be used; the message names the file and the problem. */
export class TlsConfigError extends Error {
  override readonly name = "TlsConfigError";
}

/** Days a self-signed certificate is valid: the most browsers accept for a TLS server certificate. */
export const SELF_SIGNED_DAYS = 825;

/** Files of the self-signed certificate in the data dir. */
export function selfSignedPaths(dataDir: string): { certFile: string; keyFile: string } {
  return { certFile: path.join(dataDir, "tls-cert.pem"), keyFile: path.join(dataDir, "tls-key.pem") };
}

function readPem(file: string, what: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
          ? "permission denied"
          : code === "EISDIR"
            ? "it is a directory"
            : (code ?? (error as Error).message);
    throw new TlsConfigError(`cannot read the TLS ${what} ${file}: ${problem}`);
  }
}

/** Reads and checks a PEM certificate (chain allowed) and its private key. */
export function loadTlsCredentials(certFile: string, keyFile: string): TlsCredentials {
  const cert = readPem(certFile, "certificate");
  const key = readPem(keyFile, "key");
  if (!cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw new TlsConfigError(`the TLS certificate ${certFile} is not a PEM certificate (no BEGIN CERTIFICATE block)`);
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (error) {
    throw new TlsConfigError(`the TLS certificate ${certFile} cannot be parsed: ${(error as Error).message}`);
  }
  let privateKey: crypto.KeyObject;
  try {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new Error("no BEGIN PRIVATE KEY block");
    privateKey = crypto.createPrivateKey(key);
  } catch (error) {
    throw new TlsConfigError(`the TLS key ${keyFile} is not a PEM private key (${(error as Error).message})`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(`the TLS key ${keyFile} does not match the certificate in ${certFile}`);
  }
  return { certFile, keyFile, cert, key, fingerprint256: leaf.fingerprint256 };
}

/** The names and addresses a self-signed certificate covers: this machine's, as others reach it. */
export function selfSignedNames(host: string): { dns: string[]; ips: string[] } {
  const dns = new Set([os.hostname(), "localhost"].filter(Boolean));
  const ips = new Set(["127.0.0.1", "::1"]);
  const wildcard = host === "0.0.0.0" || host === "::" || host === "";
  if (!wildcard && net.isIP(host) !== 0) ips.add(host);
  else if (!wildcard) dns.add(host);
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (!address.internal && !address.address.startsWith("fe80:")) ips.add(address.address);
    }
  }
  return { dns: [...dns], ips: [...ips] };
}

/** Makes an ECDSA P-256 certificate for `names`, signed by its own key. */
export async function generateSelfSigned(
  names: { dns: string[]; ips: string[] },
  days = SELF_SIGNED_DAYS,
): Promise<{ cert: string; key: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: crypto
      .randomBytes(16)
      .toString("hex")
      .replace(/^[89a-f]/, "1"),
    name: `CN=Parley on ${names.dns[0] ?? "localhost"}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * 24 * 3600 * 1000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.dns.map((value) => ({ type: "dns" as const, value })),
        ...names.ips.map((value) => ({ type: "ip" as const, value })),
      ]),
    ],
  });
  const key = crypto.KeyObject.from(keys.privateKey).export({ type: "pkcs8", format: "pem" }) as string;
  return { cert: certificate.toString("pem"), key };
}

/**
 * The data dir's self-signed certificate: made on the first start (the key owner-only, 0600),
 * reused on later ones so browsers that accepted it keep accepting it.
 */
export async function ensureSelfSigned(dataDir: string, host: string): Promise<{ certFile: string; keyFile: string }> {
  const files = selfSignedPaths(dataDir);
  if (fs.existsSync(files.certFile) && fs.existsSync(files.keyFile)) return files;
  const { cert, key } = await generateSelfSigned(selfSignedNames(host));
  fs.writeFileSync(files.keyFile, key, { mode: 0o600 });
  fs.chmodSync(files.keyFile, 0o600);
  fs.writeFileSync(files.certFile, cert, { mode: 0o644 });
  return files;
}
