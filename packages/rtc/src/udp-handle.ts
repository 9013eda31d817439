import type { Socket } from "node:dgram";

/**
 * The libuv UDP handle behind a Node dgram socket: its file descriptor, and Node's reading of it
 * switched off and on. A data plane that reads a socket itself (the native media plane's threads)
 * stops Node's reading first, so every datagram is read once, and gives it back when it is done;
 * Node keeps owning the socket (sending on it, closing it).
 */
export interface UdpHandle {
  readonly fd: number;
  recvStart(): number;
  recvStop(): number;
}

/**
 * The handle of a bound socket, or why there is none (not bound, closed, not a UDP handle with a
 * descriptor: a Node that moved it). dgram keeps it in its state object under a symbol described
 * "state symbol" (`socket._handle` is the deprecated accessor to the same).
 */
export function udpHandleOf(socket: Socket): UdpHandle | string {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === "state symbol");
  const handle = state && (socket as unknown as Record<symbol, { handle?: Partial<UdpHandle> | null }>)[state]?.handle;
  if (!handle) return "the UDP socket has no handle (not bound, or closed)";
  if (typeof handle.fd !== "number" || handle.fd < 0) return "the UDP socket's handle has no file descriptor";
  if (typeof handle.recvStart !== "function" || typeof handle.recvStop !== "function") {
    return "the UDP socket's handle cannot start and stop reading";
  }
  return handle as UdpHandle;
}
