import { DtlsSocket } from "werift";

/** werift's DTLS session type of the client side (SessionType.CLIENT). */
const DTLS_CLIENT = 1;
/** DTLS handshake message type of HelloVerifyRequest (RFC 6347 4.2.1). */
const HELLO_VERIFY_REQUEST = 3;

interface HandshakeFragment {
  msg_type: number;
}

let applied = false;

/**
 * Fixes werift (0.24) behaviours that break calls, by wrapping its exported classes. Idempotent;
 * applied when the media module loads, and by anything else that runs werift peers (the CLI bots,
 * the benchmarks), since both ends of a connection need it.
 *
 * 1. Retransmitted HelloVerifyRequest. A DTLS server repeats its HelloVerifyRequest when the
 *    client's answer (ClientHello with the cookie, "flight 3") is late, which happens on a busy
 *    machine. werift's client then runs flight 3 again, which throws ("already in flight 3"), and
 *    the handshake fails: the call ends with media_failed, or never gets audio. RFC 6347 4.2.4
 *    lets a client that has moved on ignore the repeat; its own retransmission timer resends
 *    flight 3 if it was lost. Seen with three concurrent calls at a load average of ~10.
 */
export function applyWeriftFixes(): void {
  if (applied) return;
  applied = true;
  const prototype = DtlsSocket.prototype as unknown as {
    handleFragmentHandshake(this: DtlsSocketLike, messages: HandshakeFragment[]): HandshakeFragment[];
  };
  const original = prototype.handleFragmentHandshake;
  prototype.handleFragmentHandshake = function (messages) {
    const handshakes = original.call(this, messages);
    if (this.sessionType !== DTLS_CLIENT || this.dtls.flight < 3) return handshakes;
    return handshakes.filter((handshake) => handshake.msg_type !== HELLO_VERIFY_REQUEST);
  };
}

interface DtlsSocketLike {
  sessionType: number;
  dtls: { flight: number };
}

applyWeriftFixes();
