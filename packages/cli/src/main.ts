import path from "node:path";
import { DEFAULT_CONFIG, dataPaths, SERVER_VERSION, sendControlCommand, startServer } from "@parley/server";
import { Command, InvalidArgumentError, Option } from "commander";

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError("a port is 0-65535.");
  return port;
}

/** A path as the operator would type it: relative when below the current directory. */
function displayPath(dir: string): string {
  const relative = path.relative(process.cwd(), dir);
  return relative && !relative.startsWith("..") ? relative : dir;
}

const program = new Command()
  .name("parley")
  .description("Parley: self-hosted voice calling. Server, operator CLI and call bots.")
  .version(SERVER_VERSION)
  .enablePositionalOptions();

program
  .command("server")
  .description("Run the Parley server (signaling, health check, operator console).")
  .addOption(new Option("--host <address>", "address to listen on").env("PARLEY_HOST").default(DEFAULT_CONFIG.host))
  .addOption(
    new Option("--port <port>", "HTTP and WebSocket port (0 = any free port)")
      .env("PARLEY_PORT")
      .default(DEFAULT_CONFIG.port)
      .argParser(parsePort),
  )
  .addOption(
    new Option("--data-dir <dir>", "where the database, log file and control socket live")
      .env("PARLEY_DATA_DIR")
      .default(DEFAULT_CONFIG.dataDir),
  )
  .addOption(new Option("--no-signup", "turn self-registration off (operators create accounts)"))
  .addOption(
    new Option("--allowed-origin <origin...>", "extra browser origins allowed to open the WebSocket").env(
      "PARLEY_ALLOWED_ORIGINS",
    ),
  )
  .addOption(
    new Option("--log-level <level>", "log level")
      .choices(["trace", "debug", "info", "warn", "error"])
      .env("PARLEY_LOG_LEVEL")
      .default(DEFAULT_CONFIG.logLevel),
  )
  .addOption(new Option("--quiet", "log to the data dir's log file only, not stdout"))
  .addOption(
    new Option("--console <mode>", "operator console on stdin: auto (when stdin is a terminal), on, off")
      .choices(["auto", "on", "off"])
      .default("auto"),
  )
  .action(async (opts) => {
    const consoleOn = opts.console === "on" || (opts.console === "auto" && process.stdin.isTTY === true);
    const allowed: string[] =
      typeof opts.allowedOrigin === "string" ? opts.allowedOrigin.split(",") : (opts.allowedOrigin ?? []);
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer({
        host: opts.host,
        port: opts.port,
        dataDir: opts.dataDir,
        signupEnabled: opts.signup !== false,
        allowedOrigins: allowed,
        logLevel: opts.logLevel,
        logToStdout: !opts.quiet,
        ...(consoleOn ? { consoleInput: process.stdin, consoleOutput: process.stdout } : {}),
      });
    } catch (error) {
      console.error(`parley: cannot start: ${(error as Error).message}`);
      process.exit(1);
    }
    process.stdout.write(
      [
        `Parley ${SERVER_VERSION} listening on ${server.httpUrl} (signaling ${server.signalingUrl})`,
        `Data: ${server.config.dataDir}`,
        consoleOn
          ? "Operator console: type 'help'."
          : `Operator commands: parley admin --data-dir ${displayPath(server.config.dataDir)} help`,
        "",
      ].join("\n"),
    );
    let signals = 0;
    const stop = () => {
      signals += 1;
      if (signals > 1) process.exit(1);
      void server.close();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    await server.closed;
    process.exit(0);
  });

program
  .command("admin")
  .description("Run an operator command against the running server (try: parley admin help).")
  .addOption(
    new Option("--data-dir <dir>", "the server's data dir").env("PARLEY_DATA_DIR").default(DEFAULT_CONFIG.dataDir),
  )
  .argument("<command...>", "the command and its arguments, e.g. users add alice --password secret123")
  .allowUnknownOption(true)
  .passThroughOptions(true)
  .action(async (words: string[], opts: { dataDir: string }) => {
    const socket = dataPaths(path.resolve(opts.dataDir)).controlSocket;
    try {
      const result = await sendControlCommand(socket, words);
      (result.exitCode === 0 ? process.stdout : process.stderr).write(`${result.output}\n`);
      process.exit(result.exitCode);
    } catch (error) {
      console.error(
        `parley admin: cannot reach the server through ${socket} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Is it running with this --data-dir?`,
      );
      process.exit(3);
    }
  });

await program.parseAsync(process.argv);
