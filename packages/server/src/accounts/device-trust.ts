import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { SettingsStore } from "../storage/settings-store.js";

const SECRET_SETTING = "device_token_secret";
/** A device stays trusted this long after its last successful login (each login renews it). */
export const DEVICE_TRUST_MS = 365 * 24 * 3600 * 1000;
const FORMAT = /^(\d{1,12})\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/;

/** What a password-bound token is checked against: the account and its current password hash. */
export interface TrustedAccount {
  id: number;
  password_hash: string;
}

/**
 * Device tokens (OWASP "device cookies"): every successful login hands the client a token that
 * says "this browser logged in to this account before". A later login carrying it is exempt from
 * the account-wide slowdown a stranger's guesses cause, so nobody can lock the owner out.
 *
 * Stateless: `userId.issued.nonce.mac`, the MAC an HMAC-SHA256 under a server secret (made once,
 * kept in the settings table) over the account id, the issue time, the nonce and the account's
 * current password hash, so a token is bound to its account and dies when the password changes
 * (new hash, new salt). The nonce identifies the token to the login limiter, which gives each
 * token its own failure limit. A token alone opens nothing: the password is still checked.
 */
export class DeviceTrust {
  readonly #secret: Buffer;

  /**
   * The secret kept in the settings, made on the first start. Processes that share a database and
   * start together keep the one stored first, so a token from one is valid on every other.
   */
  static async load(settings: SettingsStore): Promise<DeviceTrust> {
    const stored =
      (await settings.get(SECRET_SETTING)) ??
      (await settings.setIfAbsent(SECRET_SETTING, randomBytes(32).toString("base64url")));
    return new DeviceTrust(Buffer.from(stored, "base64url"));
  }

  constructor(secret: Buffer) {
    this.#secret = secret;
  }

  issue(account: TrustedAccount, now = Date.now()): string {
    const issued = Math.floor(now / 1000).toString(36);
    const nonce = randomBytes(12).toString("base64url");
    return `${account.id}.${issued}.${nonce}.${this.#mac(account, issued, nonce)}`;
  }

  /** The token's id (its nonce) when it is valid for `account` now; otherwise undefined. */
  verify(token: string, account: TrustedAccount, now = Date.now()): string | undefined {
    const match = FORMAT.exec(token);
    if (!match || Number(match[1]) !== account.id) return undefined;
    const [, , issued, nonce, mac] = match as unknown as [string, string, string, string, string];
    const issuedMs = Number.parseInt(issued, 36) * 1000;
    if (!(issuedMs <= now + 60_000 && now - issuedMs < DEVICE_TRUST_MS)) return undefined;
    const expected = Buffer.from(this.#mac(account, issued, nonce), "base64url");
    const given = Buffer.from(mac, "base64url");
    return given.length === expected.length && timingSafeEqual(given, expected) ? nonce : undefined;
  }

  #mac(account: TrustedAccount, issued: string, nonce: string): string {
    return createHmac("sha256", this.#secret)
      .update(`parley-device-v1|${account.id}|${issued}|${nonce}|${account.password_hash}`)
      .digest("base64url");
  }
}
