import fs from "node:fs";
import path from "node:path";

/** Something in the data dir that others could read or write, and was made owner-only. */
export interface LoosenedPath {
  path: string;
  /** Its permission bits before, e.g. 0o755. */
  was: number;
  /** What they are now: 0o700 for the directory, 0o600 for a file. */
  now: number;
}

/**
 * Makes the data dir owner-only (0700; created so if missing) and each of `files` in it that exists
 * (0600): the database holds password hashes and client addresses, the log names users and their
 * addresses. Run at every start, before anything opens them, so a directory copied or restored with
 * looser permissions (a backup unpacked by another account, an `cp` under umask 022) is closed again.
 * Symbolic links are left alone (chmod would follow them out of the data dir). Returns what was
 * looser, for the warning.
 */
export function enforceOwnerOnly(dir: string, files: readonly string[]): LoosenedPath[] {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const loosened: LoosenedPath[] = [];
  const tighten = (target: string, mode: number) => {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(target);
    } catch {
      return;
    }
    if (stat.isSymbolicLink()) return;
    const was = stat.mode & 0o777;
    if ((was & 0o077) === 0) return;
    fs.chmodSync(target, mode);
    loosened.push({ path: target, was, now: mode });
  };
  tighten(dir, 0o700);
  for (const file of files) tighten(path.join(dir, file), 0o600);
  return loosened;
}

/** 0o755 as "0755". */
export function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}
