import type { ConnectionState, ParleyClient } from "@parley/client";
import type { CallHistoryEntry, DirectoryUser, PhonebookEntry, Self } from "@parley/protocol";
import type { CallsState } from "./call-manager.js";
import type { MediaPrefs } from "./storage.js";

export type Page = "contacts" | "history" | "account";

/** Why the app is back on the sign-in screen. */
export type SignedOutReason = "normal" | "revoked" | "expired" | "disabled" | "deleted";

export interface HistoryState {
  entries: CallHistoryEntry[];
  status: "idle" | "loading" | "loaded" | "error";
  missedCount: number;
}

export interface SoftphoneState extends CallsState {
  phase: "starting" | "resuming" | "signedOut" | "signedIn";
  serverUrl: string;
  connection: ConnectionState;
  /** Why the app signed out by itself. */
  signedOutReason: SignedOutReason | undefined;
  /** The saved session could not be resumed for a reason other than its end (server down). */
  resumeError: unknown;
  /** The operator disconnected this device; no automatic reconnect. */
  kicked: boolean;
  self: Self | undefined;
  /** Everyone but me, sorted by display name. */
  directory: DirectoryUser[];
  phonebook: PhonebookEntry[];
  page: Page;
  history: HistoryState;
  micError: boolean;
  speakerMuted: boolean;
  prefs: MediaPrefs;
}

/** How a slice reads the whole state and changes its own part of it (each change replaces the state object). */
export interface StateAccess {
  get(): SoftphoneState;
  set(patch: Partial<SoftphoneState>): void;
}

/** The SDK client of the current sign-in, for the slices that send requests on it. */
export interface ClientAccess {
  readonly client: ParleyClient | undefined;
  /** The client, if connected; else NotConnectedError. */
  requireClient(): ParleyClient;
}
