import fs from "node:fs";
import net from "node:net";
import type { Logger } from "pino";
import type { AdminCommands } from "./admin-commands.js";

/** Requests on the control socket: one JSON line `{ "command": ["users", "add", ...] }`. */
export interface ControlRequest {
  command: string[];
}

const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * A Unix socket in the data dir (mode 0600: only the account running the server may use it)
 * through which `parley admin` runs operator commands against the live server, like `asterisk -r`.
 */
export class ControlSocket {
  readonly path: string;
  readonly #server: net.Server;

  private constructor(path: string, server: net.Server) {
    this.path = path;
    this.#server = server;
  }

  static async listen(path: string, commands: AdminCommands, logger: Logger): Promise<ControlSocket> {
    await removeStaleSocket(path);
    const server = net.createServer((socket) => {
      let buffer = "";
      socket.setEncoding("utf8");
      socket.on("error", () => socket.destroy());
      socket.on("data", (chunk: string) => {
        buffer += chunk;
        if (buffer.length > MAX_REQUEST_BYTES) {
          socket.end(`${JSON.stringify({ output: "error: request too large", exitCode: 2 })}\n`);
          return;
        }
        const newline = buffer.indexOf("\n");
        if (newline < 0) return;
        const line = buffer.slice(0, newline);
        socket.removeAllListeners("data");
        void answer(line).then((reply) => socket.end(`${JSON.stringify(reply)}\n`));
      });
    });
    async function answer(line: string) {
      let request: ControlRequest;
      try {
        request = JSON.parse(line) as ControlRequest;
        if (!Array.isArray(request.command) || !request.command.every((w) => typeof w === "string")) {
          throw new Error("command must be an array of strings");
        }
      } catch (error) {
        return { output: `error: bad control request: ${(error as Error).message}`, exitCode: 2 };
      }
      return commands.run(request.command, "operator");
    }
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    fs.chmodSync(path, 0o600);
    logger.info({ path }, "control socket listening");
    return new ControlSocket(path, server);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
  }
}

/** A socket file left by a crashed server is removed; one that answers means a server is running. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!fs.existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) throw new Error(`Another Parley server is running with this data dir (control socket ${path}).`);
  fs.rmSync(path, { force: true });
}

/** Client side, used by `parley admin`. */
export function sendControlCommand(path: string, command: string[]): Promise<{ output: string; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let data = "";
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(`${JSON.stringify({ command })}\n`));
    socket.on("data", (chunk: string) => {
      data += chunk;
    });
    socket.on("error", reject);
    socket.on("end", () => {
      try {
        resolve(JSON.parse(data) as { output: string; exitCode: number });
      } catch {
        reject(new Error("The server closed the control socket without an answer."));
      }
    });
  });
}
