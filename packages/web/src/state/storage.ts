/** What the softphone remembers in localStorage. Every key is prefixed with `parley.`. */

import type { DeviceTokenStore } from "@parley/client";

const SERVER_KEY = "parley.server";
const SESSION_KEY = "parley.session";
const PREFS_KEY = "parley.media";
const HISTORY_SEEN_PREFIX = "parley.historySeen.";
const DEVICE_TOKEN_PREFIX = "parley.deviceToken.";

export interface SavedSession {
  url: string;
  token: string;
}

export interface MediaPrefs {
  micDeviceId: string;
  speakerDeviceId: string;
  /** 0-1. */
  speakerVolume: number;
}

function read<T>(key: string): T | undefined {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  } catch {
    return undefined;
  }
}

function write(key: string, value: unknown): void {
  try {
    if (value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the app works, it just forgets
  }
}

/** `ws(s)://<this host>/ws`: the server that served the page. */
export function defaultServerUrl(): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

export function loadServerUrl(): string {
  const saved = read<string>(SERVER_KEY);
  return typeof saved === "string" && saved ? saved : defaultServerUrl();
}

export function saveServerUrl(url: string): void {
  write(SERVER_KEY, url);
}

export function loadSession(): SavedSession | undefined {
  const saved = read<SavedSession>(SESSION_KEY);
  return saved && typeof saved.url === "string" && typeof saved.token === "string" ? saved : undefined;
}

export function saveSession(session: SavedSession | undefined): void {
  write(SESSION_KEY, session);
}

export function loadMediaPrefs(): MediaPrefs {
  const saved = read<Partial<MediaPrefs>>(PREFS_KEY) ?? {};
  return {
    micDeviceId: typeof saved.micDeviceId === "string" ? saved.micDeviceId : "",
    speakerDeviceId: typeof saved.speakerDeviceId === "string" ? saved.speakerDeviceId : "",
    speakerVolume:
      typeof saved.speakerVolume === "number" && saved.speakerVolume >= 0 && saved.speakerVolume <= 1
        ? saved.speakerVolume
        : 1,
  };
}

export function saveMediaPrefs(prefs: MediaPrefs): void {
  write(PREFS_KEY, prefs);
}

/** The newest history entry (server time) the user has seen, per account. */
export function loadHistorySeen(userId: number): string | undefined {
  const saved = read<string>(HISTORY_SEEN_PREFIX + userId);
  return typeof saved === "string" ? saved : undefined;
}

export function saveHistorySeen(userId: number, timestamp: string): void {
  write(HISTORY_SEEN_PREFIX + userId, timestamp);
}

/**
 * This browser's device token per username: sent with the next login of that account, so the
 * owner is not slowed down by strangers guessing the password. Kept across logouts.
 */
export const deviceTokenStore: DeviceTokenStore = {
  load(username) {
    const saved = read<string>(DEVICE_TOKEN_PREFIX + username);
    return typeof saved === "string" ? saved : undefined;
  },
  save(username, token) {
    write(DEVICE_TOKEN_PREFIX + username, token);
  },
};
