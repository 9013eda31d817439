/*
 * The load generator's native RTP engine (one per load generator process).
 *
 * The Node load generator sets every leg up with werift (ICE, DTLS handshake, SRTP keys), then
 * hands the leg's UDP socket to this engine: the engine takes its own copy of the socket with
 * pidfd_getfd(2), and from then on sends the leg's RTP (pre-encoded Opus frames, one every 20 ms,
 * SRTP-protected) and receives it (unprotected and authenticated in full, with replay protection,
 * so a relay that corrupted, replayed or mis-keyed a packet shows up as a failure). Datagrams that
 * are not RTP (STUN consent checks, DTLS) go back to the Node process, which gives them to werift;
 * RTCP from the relay is counted and dropped.
 *
 * SRTP is the native data plane's own (packages/rtc/native/srtp.c: OpenSSL contexts made once per
 * leg and direction), which its tests check against the RFC 3711 and RFC 7714 vectors and against
 * werift both ways, and Chromium's (libsrtp) in the browser tests. The engine used Debian's
 * libsrtp2 before; it is built on NSS, which spent about 40% of the engine's CPU in its PKCS#11
 * layer per packet (a perf profile at 300 calls), so the generator's core ran out long before
 * the relays' did. Built with -DENGINE_LIBSRTP it still runs on libsrtp (the reference
 * implementation), as the load generator's test does to check the relay's SRTP against it. Sends
 * of a round, and receives on every ready socket, go out in one io_uring
 * submission each (packages/rtc/native/uring.c), as the native plane's media threads do; where
 * io_uring is refused the engine makes one system call per socket (recvmmsg, sendto).
 *
 * Every payload ends with the 8-byte send time (CLOCK_REALTIME, ns): both ends of every call live in
 * the same engine, so a packet's delay is its arrival time, as the kernel stamped it on receipt
 * (SO_TIMESTAMPNS), minus that stamp, on one clock.
 *
 * The engine works in 1 ms rounds (sleep to the next millisecond, read every socket that has
 * data, send every frame that is due), so its cost does not grow with wake-ups per packet, and
 * the kernel's receive stamps keep the round's granularity out of the measured delay.
 *
 * Control: one command per line on stdin, "<id> <verb> <args...>", answered "<id> ok [json]" or
 * "<id> err <message>" on stdout; events are "ev first <leg> <epoch ms>" (a leg's first RTP packet)
 * and "ev dgram <leg> <ip> <port> <hex>" (a non-RTP datagram for werift).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rtp.h"
#include "uring.h"
#ifdef ENGINE_LIBSRTP
#include <srtp2/srtp.h>
#else
#include "srtp.h"
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define MAX_LEGS 65536
#define MAX_FRAMES 4096
#define FRAME_NS 20000000LL
#define STAMP_BYTES 8
#define PACKET_MAX 1600
#define BATCH 16
/* Operations per io_uring submission (a round's sends or receives go out in as few as fit). */
#define RING_ENTRIES 256
/* SSRCs a leg receives at once (a conference's slots each have their own); more replace the oldest. */
#define RX_SSRCS 8

/* ------------------------------------------------------------------ latency histogram */
/* The same buckets as bench/lib/hist.ts (so the Node side merges them unchanged): 10 µs up to
 * 200 ms, 1 ms up to 60 s, one overflow bucket. */
#define FINE_BUCKETS 20000
#define BUCKETS (FINE_BUCKETS + 59800)

typedef struct {
  uint32_t counts[BUCKETS + 1];
  uint64_t count;
  double sum;
  double max;
} histogram_t;

static void hist_reset(histogram_t *h) { memset(h, 0, sizeof(*h)); }

static void hist_record(histogram_t *h, double ms) {
  if (ms < 0) ms = 0;
  size_t bucket;
  if (ms < 200.0) bucket = (size_t)(ms / 0.01);
  else {
    double coarse = (double)FINE_BUCKETS + (ms - 200.0);
    bucket = coarse >= BUCKETS ? BUCKETS : (size_t)coarse;
  }
  if (bucket > BUCKETS) bucket = BUCKETS;
  h->counts[bucket]++;
  h->count++;
  h->sum += ms;
  if (ms > h->max) h->max = ms;
}

static void hist_print(FILE *out, const histogram_t *h) {
  fprintf(out, "{\"buckets\":[");
  int first = 1;
  for (size_t i = 0; i <= BUCKETS; i++) {
    if (!h->counts[i]) continue;
    fprintf(out, "%s[%zu,%u]", first ? "" : ",", i, h->counts[i]);
    first = 0;
  }
  fprintf(out, "],\"count\":%llu,\"sum\":%.6f,\"max\":%.6f}", (unsigned long long)h->count, h->sum, h->max);
}

/* ------------------------------------------------------------------ state */

typedef struct {
  int fd;
  struct sockaddr_in remote;
#ifdef ENGINE_LIBSRTP
  srtp_t tx;
  srtp_t rx;
#else
  srtp_context_t tx;
  srtp_context_t rx;
  /* The rollover counter of what the leg sends (RFC 3711 3.3.1). */
  uint32_t tx_roc;
  /* Replay state per received SSRC; `rx_next` is the entry the next new SSRC takes. */
  struct {
    uint32_t ssrc;
    srtp_replay_t replay;
  } rx_ssrcs[RX_SSRCS];
  int rx_count;
  int rx_next;
#endif
  uint32_t ssrc;
  uint8_t payload_type;
  uint16_t seq;
  uint32_t timestamp;
  int level_id; /* RFC 6464 audio level extension id, 0: none */
  int level;
  int sending;
  int64_t next_ns;
  int frame;
  int fanout;
  int heard; /* a packet arrived (the "first" event was sent) */
  int active_index; /* position in `active`, -1 if not sending */
} leg_t;

static leg_t *legs[MAX_LEGS];
static int active[MAX_LEGS];
static int active_count;
static int leg_count;

static uint8_t *frames[MAX_FRAMES];
static int frame_lengths[MAX_FRAMES];
static int frame_count;

static int epoll_fd;
static int parent_pidfd = -1;
/* NULL where io_uring is refused: one system call per socket then. */
static uring_t *ring;

static struct {
  int open;
  int64_t start_ns;
  int64_t end_ns;
  uint64_t sent, expected, received;
  histogram_t delay;
  histogram_t lateness;
} window;

static uint64_t auth_failures;
static uint64_t replays;
static uint64_t rtcp_dropped;
/* Packets whose kernel receive stamp was missing (their delay is taken at processing instead). */
static uint64_t unstamped;

/* Where the engine's own CPU goes (CLOCK_PROCESS_CPUTIME_ID: user + system, exact) since the last
 * "window" command: reading sockets, sending frames, and in all (sleeping and commands included). */
static struct {
  int64_t start_ns, receive_ns, send_ns;
  uint64_t received, sent, rounds;
} cost;

static int64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The time in ns since the epoch: the clock of send stamps, kernel receive stamps and windows. */
static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------ output */

static void reply_ok(long id, const char *json) {
  if (json) printf("%ld ok %s\n", id, json);
  else printf("%ld ok\n", id);
  fflush(stdout);
}

static void reply_err(long id, const char *message) {
  printf("%ld err %s\n", id, message);
  fflush(stdout);
}

/* "<id> err <what>: <strerror(errno)>" */
static void reply_errno(long rid, const char *what) {
  printf("%ld err %s: %s\n", rid, what, strerror(errno));
  fflush(stdout);
}

static void hex_print(const uint8_t *data, size_t length) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < length; i++) {
    putchar(digits[data[i] >> 4]);
    putchar(digits[data[i] & 15]);
  }
}

static int hex_parse(const char *hex, uint8_t *out, size_t max) {
  size_t length = strlen(hex);
  if (length % 2 || length / 2 > max) return -1;
  for (size_t i = 0; i < length / 2; i++) {
    unsigned value;
    if (sscanf(hex + 2 * i, "%2x", &value) != 1) return -1;
    out[i] = (uint8_t)value;
  }
  return (int)(length / 2);
}

/* ------------------------------------------------------------------ legs */

/* ------------------------------------------------------------------ SRTP */

/* SRTP protection profiles as DTLS-SRTP numbers them (RFC 5764, RFC 7714). */
#define PROFILE_AES128_CM_HMAC_SHA1_80 0x0001
#define PROFILE_AEAD_AES_128_GCM 0x0007
/* Room after a packet for its tag. */
#define TAG_ROOM 16

/* Why a received packet was refused: its authentication failed, or it was replayed or too old. */
enum { UNPROTECT_AUTH = -1, UNPROTECT_REPLAY = -2 };

#ifdef ENGINE_LIBSRTP

/* One direction's libsrtp session from the DTLS-SRTP master key || salt `key` (30 bytes for
 * AES-CM, 28 for GCM): 0, or -1 for an unsupported profile or key. */
static int session_open(srtp_t *session, int profile, const uint8_t *key, int key_length, int inbound) {
  srtp_policy_t policy;
  memset(&policy, 0, sizeof(policy));
  if (profile == PROFILE_AEAD_AES_128_GCM) {
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
    if (key_length != 28) return -1;
  } else if (profile == PROFILE_AES128_CM_HMAC_SHA1_80) {
    srtp_crypto_policy_set_rtp_default(&policy.rtp);
    srtp_crypto_policy_set_rtcp_default(&policy.rtcp);
    if (key_length != 30) return -1;
  } else {
    return -1;
  }
  policy.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
  policy.key = (unsigned char *)key;
  policy.window_size = 1024;
  policy.allow_repeat_tx = 0;
  policy.next = NULL;
  return srtp_create(session, &policy) == srtp_err_status_ok ? 0 : -1;
}

static void session_close(srtp_t *session) {
  if (*session) srtp_dealloc(*session);
  *session = NULL;
}

static int engine_srtp_init(void) { return srtp_init() == srtp_err_status_ok ? 0 : -1; }

/* Protects the leg's RTP packet of `length` bytes (TAG_ROOM to spare): the SRTP length, or -1. */
static int packet_protect(leg_t *leg, uint8_t *packet, int header, int length) {
  (void)header;
  return srtp_protect(leg->tx, packet, &length) == srtp_err_status_ok ? length : -1;
}

/* Authenticates and decrypts a received SRTP packet: the RTP length, or UNPROTECT_AUTH/_REPLAY. */
static int packet_unprotect(leg_t *leg, uint8_t *packet, int header, int length) {
  (void)header;
  srtp_err_status_t status = srtp_unprotect(leg->rx, packet, &length);
  if (status == srtp_err_status_ok) return length;
  return status == srtp_err_status_replay_fail || status == srtp_err_status_replay_old ? UNPROTECT_REPLAY
                                                                                        : UNPROTECT_AUTH;
}

#else

static int session_open(srtp_context_t *context, int profile, const uint8_t *key, int key_length, int inbound) {
  size_t salt_bytes;
  if (profile == PROFILE_AEAD_AES_128_GCM) salt_bytes = SRTP_GCM_SALT_BYTES;
  else if (profile == PROFILE_AES128_CM_HMAC_SHA1_80) salt_bytes = SRTP_CM_SALT_BYTES;
  else return -1;
  if (key_length != (int)(SRTP_KEY_BYTES + salt_bytes)) return -1;
  srtp_session_keys_t keys;
  const char *error = srtp_derive_keys(profile, key, key + SRTP_KEY_BYTES, salt_bytes, &keys);
  if (!error) error = srtp_context_init(context, profile, &keys, inbound);
  memset(&keys, 0, sizeof(keys));
  return error ? -1 : 0;
}

static void session_close(srtp_context_t *context) { srtp_context_free(context); }

static int engine_srtp_init(void) { return 0; }

static int packet_protect(leg_t *leg, uint8_t *packet, int header, int length) {
  uint32_t roc = leg->tx_roc;
  if (rtp_be16(packet + 2) == 0xffff) leg->tx_roc++;
  return srtp_protect_rtp(&leg->tx, packet, header, length, roc);
}

/* The replay state of `ssrc` on the leg (a new or the oldest entry for an SSRC not seen yet). */
static srtp_replay_t *replay_of(leg_t *leg, uint32_t ssrc) {
  for (int i = 0; i < leg->rx_count; i++) {
    if (leg->rx_ssrcs[i].ssrc == ssrc) return &leg->rx_ssrcs[i].replay;
  }
  int at = leg->rx_count < RX_SSRCS ? leg->rx_count++ : leg->rx_next;
  leg->rx_next = (at + 1) % RX_SSRCS;
  leg->rx_ssrcs[at].ssrc = ssrc;
  memset(&leg->rx_ssrcs[at].replay, 0, sizeof(srtp_replay_t));
  return &leg->rx_ssrcs[at].replay;
}

static int packet_unprotect(leg_t *leg, uint8_t *packet, int header, int length) {
  if (length < header + leg->rx.tag_bytes) return UNPROTECT_AUTH;
  uint64_t index;
  int result = srtp_unprotect_rtp(&leg->rx, replay_of(leg, rtp_be32(packet + 8)), packet, header, length, &index);
  if (result >= 0) return result;
  return result == SRTP_AUTH_FAILED ? UNPROTECT_AUTH : UNPROTECT_REPLAY;
}

#endif

static void stop_sending(leg_t *leg) {
  if (!leg->sending) return;
  int at = leg->active_index;
  int last = active[--active_count];
  active[at] = last;
  legs[last]->active_index = at;
  leg->sending = 0;
  leg->active_index = -1;
}

static void drop_leg(int id) {
  leg_t *leg = legs[id];
  if (!leg) return;
  stop_sending(leg);
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, leg->fd, NULL);
  close(leg->fd);
  session_close(&leg->tx);
  session_close(&leg->rx);
  free(leg);
  legs[id] = NULL;
  leg_count--;
}

/* A copy of file descriptor `remote_fd` of process `pid` (the Node generator), or -1 (errno set). */
static int grab_fd(int pid, int remote_fd) {
  static int pidfd_of = -1;
  if (parent_pidfd < 0 || pid != pidfd_of) {
    if (parent_pidfd >= 0) close(parent_pidfd);
    parent_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    pidfd_of = pid;
  }
  return parent_pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, parent_pidfd, remote_fd, 0);
}

/* "probe <pid> <fd>": whether this engine may take the Node process's sockets (it needs ptrace
 * access to it: same user, and Yama's ptrace_scope or CAP_SYS_PTRACE allowing it). */
static void command_probe(long rid, char *args) {
  int pid, remote_fd;
  if (sscanf(args, "%d %d", &pid, &remote_fd) != 2) {
    reply_err(rid, "bad probe command");
    return;
  }
  int fd = grab_fd(pid, remote_fd);
  if (fd < 0) {
    reply_errno(rid, "pidfd_getfd");
    return;
  }
  close(fd);
  reply_ok(rid, NULL);
}

/* "leg <id> <pid> <fd> <ip> <port> <profile> <tx key||salt hex> <rx key||salt hex> <ssrc> <pt>" */
static void command_leg(long rid, char *args) {
  int id, pid, remote_fd, port, profile, payload_type;
  unsigned long ssrc;
  char ip[64], tx_hex[128], rx_hex[128];
  if (sscanf(args, "%d %d %d %63s %d %d %127s %127s %lu %d", &id, &pid, &remote_fd, ip, &port, &profile, tx_hex,
             rx_hex, &ssrc, &payload_type) != 10 ||
      id < 0 || id >= MAX_LEGS || legs[id]) {
    reply_err(rid, "bad leg command");
    return;
  }
  uint8_t tx_key[64], rx_key[64];
  int tx_length = hex_parse(tx_hex, tx_key, sizeof(tx_key));
  int rx_length = hex_parse(rx_hex, rx_key, sizeof(rx_key));
  leg_t *leg = calloc(1, sizeof(leg_t));
  if (!leg) {
    reply_err(rid, "out of memory");
    return;
  }
  leg->remote.sin_family = AF_INET;
  leg->remote.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, ip, &leg->remote.sin_addr) != 1) {
    free(leg);
    reply_err(rid, "bad address");
    return;
  }
  if (session_open(&leg->tx, profile, tx_key, tx_length, 0)) {
    free(leg);
    reply_err(rid, "unsupported SRTP profile or key");
    return;
  }
  if (session_open(&leg->rx, profile, rx_key, rx_length, 1)) {
    session_close(&leg->tx);
    free(leg);
    reply_err(rid, "unsupported SRTP profile or key");
    return;
  }
  int fd = grab_fd(pid, remote_fd);
  if (fd < 0) {
    int error = errno;
    session_close(&leg->tx);
    session_close(&leg->rx);
    free(leg);
    errno = error;
    reply_errno(rid, "pidfd_getfd");
    return;
  }
  leg->fd = fd;
  leg->ssrc = (uint32_t)ssrc;
  leg->payload_type = (uint8_t)payload_type;
  leg->seq = (uint16_t)(rand() & 0x7fff);
  leg->timestamp = (uint32_t)rand();
  leg->active_index = -1;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
  struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)id};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
    close(fd);
    session_close(&leg->tx);
    session_close(&leg->rx);
    free(leg);
    reply_err(rid, "epoll_ctl failed");
    return;
  }
  legs[id] = leg;
  leg_count++;
  reply_ok(rid, NULL);
}

/* "stream <id> <fanout>": the leg sends a frame every 20 ms (phase at random), each expected at
 * `fanout` receivers; an already-sending leg only gets its fanout updated. */
static void command_stream(long rid, char *args) {
  int id, fanout;
  if (sscanf(args, "%d %d", &id, &fanout) != 2 || id < 0 || id >= MAX_LEGS || !legs[id] || fanout < 0) {
    reply_err(rid, "bad stream command");
    return;
  }
  if (frame_count == 0) {
    reply_err(rid, "no frames loaded");
    return;
  }
  leg_t *leg = legs[id];
  leg->fanout = fanout;
  if (!leg->sending) {
    leg->sending = 1;
    leg->next_ns = now_ns() + (int64_t)(((double)rand() / RAND_MAX) * FRAME_NS);
    leg->active_index = active_count;
    active[active_count++] = id;
  }
  reply_ok(rid, NULL);
}

/* "level <id> <extension id> <level>": send the RFC 6464 audio level in every packet. */
static void command_level(long rid, char *args) {
  int id, ext, level;
  if (sscanf(args, "%d %d %d", &id, &ext, &level) != 3 || id < 0 || id >= MAX_LEGS || !legs[id] || ext < 1 ||
      ext > 14 || level < 0 || level > 127) {
    reply_err(rid, "bad level command");
    return;
  }
  legs[id]->level_id = ext;
  legs[id]->level = level;
  reply_ok(rid, NULL);
}

/* "frames <path>": 20 ms Opus frames, each a 16-bit big-endian length and its bytes. */
static void command_frames(long rid, char *args) {
  char path[512];
  if (sscanf(args, "%511s", path) != 1) {
    reply_err(rid, "bad frames command");
    return;
  }
  FILE *file = fopen(path, "rb");
  if (!file) {
    reply_err(rid, "cannot open the frames file");
    return;
  }
  frame_count = 0;
  uint8_t length_bytes[2];
  while (frame_count < MAX_FRAMES && fread(length_bytes, 1, 2, file) == 2) {
    int length = (length_bytes[0] << 8) | length_bytes[1];
    if (length <= 0 || length > 1200) break;
    uint8_t *frame = malloc((size_t)length);
    if (!frame || fread(frame, 1, (size_t)length, file) != (size_t)length) {
      free(frame);
      break;
    }
    frames[frame_count] = frame;
    frame_lengths[frame_count++] = length;
  }
  fclose(file);
  if (frame_count == 0) {
    reply_err(rid, "no frames");
    return;
  }
  char json[64];
  snprintf(json, sizeof(json), "{\"frames\":%d}", frame_count);
  reply_ok(rid, json);
}

/* "window <start epoch ms> <end epoch ms>": count packets sent in [start, end) from now on. */
static void command_window(long rid, char *args) {
  double start, end;
  if (sscanf(args, "%lf %lf", &start, &end) != 2 || end <= start) {
    reply_err(rid, "bad window command");
    return;
  }
  window.open = 1;
  window.start_ns = (int64_t)(start * 1e6);
  window.end_ns = (int64_t)(end * 1e6);
  window.sent = window.expected = window.received = 0;
  hist_reset(&window.delay);
  hist_reset(&window.lateness);
  memset(&cost, 0, sizeof(cost));
  cost.start_ns = cpu_ns();
  reply_ok(rid, NULL);
}

/* "report": the window's counts and histograms (then the window closes). */
static void command_report(long rid) {
  printf("%ld ok {\"sent\":%llu,\"expected\":%llu,\"received\":%llu,\"legs\":%d,\"streams\":%d,"
         "\"authFailures\":%llu,\"replays\":%llu,\"unstamped\":%llu,\"rtcpDropped\":%llu,\"engine\":{\"cpuMs\":%.3f,\"receiveMs\":%.3f,"
         "\"sendMs\":%.3f,\"received\":%llu,\"sent\":%llu,\"rounds\":%llu},\"delay\":",
         rid, (unsigned long long)window.sent, (unsigned long long)window.expected,
         (unsigned long long)window.received, leg_count, active_count, (unsigned long long)auth_failures,
         (unsigned long long)replays, (unsigned long long)unstamped, (unsigned long long)rtcp_dropped, (double)(cpu_ns() - cost.start_ns) / 1e6, (double)cost.receive_ns / 1e6,
         (double)cost.send_ns / 1e6, (unsigned long long)cost.received, (unsigned long long)cost.sent,
         (unsigned long long)cost.rounds);
  hist_print(stdout, &window.delay);
  printf(",\"lateness\":");
  hist_print(stdout, &window.lateness);
  printf("}\n");
  fflush(stdout);
  window.open = 0;
}

static void command(char *line) {
  char *rest;
  long rid = strtol(line, &rest, 10);
  while (*rest == ' ') rest++;
  char *args = strchr(rest, ' ');
  if (args) *args++ = 0;
  else args = rest + strlen(rest);
  if (!strcmp(rest, "leg")) command_leg(rid, args);
  else if (!strcmp(rest, "stream")) command_stream(rid, args);
  else if (!strcmp(rest, "level")) command_level(rid, args);
  else if (!strcmp(rest, "frames")) command_frames(rid, args);
  else if (!strcmp(rest, "window")) command_window(rid, args);
  else if (!strcmp(rest, "report")) command_report(rid);
  else if (!strcmp(rest, "probe")) command_probe(rid, args);
  else if (!strcmp(rest, "drop")) {
    int id;
    if (sscanf(args, "%d", &id) == 1 && id >= 0 && id < MAX_LEGS) drop_leg(id);
    reply_ok(rid, NULL);
  } else if (!strcmp(rest, "dropall")) {
    for (int id = 0; id < MAX_LEGS; id++) drop_leg(id);
    window.open = 0;
    reply_ok(rid, NULL);
  } else reply_err(rid, "unknown command");
}

static char input[1 << 16];
static size_t input_length;

/* Reads what stdin has and runs every complete line; returns 0 once stdin is closed. */
static int read_commands(void) {
  for (;;) {
    ssize_t n = read(0, input + input_length, sizeof(input) - input_length - 1);
    if (n == 0) return 0;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 1 : 0;
    input_length += (size_t)n;
    input[input_length] = 0;
    char *start = input;
    char *newline;
    while ((newline = memchr(start, '\n', input_length - (size_t)(start - input)))) {
      *newline = 0;
      if (newline > start) command(start);
      start = newline + 1;
    }
    input_length -= (size_t)(start - input);
    memmove(input, start, input_length);
    if (input_length == sizeof(input) - 1) input_length = 0; /* an absurd line: dropped */
  }
}

/* ------------------------------------------------------------------ media */

/* Buffers of the operations one io_uring submission carries (sends, or receives). */
static uint8_t slot_buffers[RING_ENTRIES][PACKET_MAX + TAG_ROOM];
static struct sockaddr_in slot_names[RING_ENTRIES];
static uint8_t slot_controls[RING_ENTRIES][CMSG_SPACE(sizeof(struct timespec))];
static struct msghdr slot_messages[RING_ENTRIES];
static struct iovec slot_vectors[RING_ENTRIES];
static int slot_legs[RING_ENTRIES];
static int slots_queued;

/* Writes leg's next frame, SRTP-protected, into `packet`: its length, or -1. */
static int build_frame(leg_t *leg, uint8_t *packet, int64_t now) {
  int header = 12;
  packet[0] = leg->level_id ? 0x90 : 0x80;
  packet[1] = leg->payload_type;
  rtp_put16(packet + 2, leg->seq);
  rtp_put32(packet + 4, leg->timestamp);
  rtp_put32(packet + 8, leg->ssrc);
  if (leg->level_id) {
    /* RFC 8285 one-byte header extension: one element, padded to a word. */
    const uint8_t extension[8] = {0xbe, 0xde, 0x00, 0x01, (uint8_t)(leg->level_id << 4), (uint8_t)(0x80 | leg->level),
                                  0, 0};
    memcpy(packet + 12, extension, 8);
    header = 20;
  }
  int frame = leg->frame;
  leg->frame = (frame + 1) % frame_count;
  memcpy(packet + header, frames[frame], (size_t)frame_lengths[frame]);
  uint64_t stamp = (uint64_t)now;
  memcpy(packet + header + frame_lengths[frame], &stamp, STAMP_BYTES);
  int length = header + frame_lengths[frame] + STAMP_BYTES;
  leg->seq++;
  leg->timestamp += 960;
  return packet_protect(leg, packet, header, length);
}

static void ignore_completion(void *context, uint64_t tag, int result) {
  (void)context;
  (void)tag;
  (void)result;
}

/* Submits the queued sends (io_uring) and frees their slots. */
static void flush_sends(void) {
  if (slots_queued == 0) return;
  if (uring_run(ring, ignore_completion, NULL) < 0) {
    /* The ring failed: plain system calls from here on (this batch is lost, as a full queue would). */
    uring_destroy(ring);
    ring = NULL;
  }
  slots_queued = 0;
}

static void send_frame(leg_t *leg, int64_t now) {
  if (!ring) {
    uint8_t packet[PACKET_MAX + TAG_ROOM];
    int length = build_frame(leg, packet, now);
    if (length > 0) {
      sendto(leg->fd, packet, (size_t)length, MSG_DONTWAIT, (struct sockaddr *)&leg->remote, sizeof(leg->remote));
    }
    return;
  }
  int k = slots_queued;
  int length = build_frame(leg, slot_buffers[k], now);
  if (length <= 0) return;
  slot_vectors[k].iov_base = slot_buffers[k];
  slot_vectors[k].iov_len = (size_t)length;
  struct msghdr *message = &slot_messages[k];
  memset(message, 0, sizeof(*message));
  message->msg_name = &leg->remote;
  message->msg_namelen = sizeof(leg->remote);
  message->msg_iov = &slot_vectors[k];
  message->msg_iovlen = 1;
  if (uring_sendmsg(ring, leg->fd, message, (uint64_t)k) != 0) return;
  if (++slots_queued == RING_ENTRIES) flush_sends();
}

static void send_due(void) {
  int64_t now = now_ns();
  for (int i = 0; i < active_count; i++) {
    leg_t *leg = legs[active[i]];
    if (leg->next_ns > now) continue;
    send_frame(leg, now);
    cost.sent++;
    if (window.open && now >= window.start_ns && now < window.end_ns) {
      window.sent++;
      window.expected += (uint64_t)leg->fanout;
      hist_record(&window.lateness, (double)(now - leg->next_ns) / 1e6);
    }
    leg->next_ns += FRAME_NS;
    /* After a long stall skip the missed frames instead of sending a burst, keeping the leg's
     * phase: moving every late leg to now + 20 ms would line them all up, and from then on the
     * relay would get their packets in one burst every 20 ms instead of spread over the period. */
    if (now - leg->next_ns > 5 * FRAME_NS) leg->next_ns += ((now - leg->next_ns) / FRAME_NS + 1) * FRAME_NS;
  }
  if (ring) flush_sends();
}

static void received(int id, leg_t *leg, uint8_t *data, int length, struct sockaddr_in *from, int64_t now) {
  uint8_t b0 = data[0];
  if (length >= 12 && b0 >= 128 && b0 <= 191) {
    if (data[1] >= 192 && data[1] <= 223) {
      rtcp_dropped++;
      return;
    }
    int header = rtp_header_length(data, length);
    if (header < 0) {
      auth_failures++;
      return;
    }
    length = packet_unprotect(leg, data, header, length);
    if (length < 0) {
      if (length == UNPROTECT_AUTH) auth_failures++;
      else replays++;
      return;
    }
    if (length < header + STAMP_BYTES) return;
    uint64_t stamp;
    memcpy(&stamp, data + length - STAMP_BYTES, STAMP_BYTES);
    if (!leg->heard) {
      leg->heard = 1;
      printf("ev first %d %.3f\n", id, (double)now / 1e6);
      fflush(stdout);
    }
    int64_t sent = (int64_t)stamp;
    if (window.open && sent >= window.start_ns && sent < window.end_ns) {
      window.received++;
      hist_record(&window.delay, (double)(now - sent) / 1e6);
    }
    return;
  }
  /* STUN, DTLS and anything else: werift's business. */
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &from->sin_addr, ip, sizeof(ip));
  printf("ev dgram %d %s %d ", id, ip, ntohs(from->sin_port));
  hex_print(data, (size_t)length);
  putchar('\n');
  fflush(stdout);
}

/* The kernel's receive stamp of a message (SO_TIMESTAMPNS), or `fallback`. */
static int64_t arrival_of(struct msghdr *message, int64_t fallback) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c; c = CMSG_NXTHDR(message, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof(ts));
      return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
  }
  unstamped++;
  return fallback;
}

/* Reads every datagram a leg's socket holds, one recvmmsg at a time (without io_uring). */
static void drain(int id) {
  leg_t *leg = legs[id];
  if (!leg) return;
  static uint8_t buffers[BATCH][PACKET_MAX];
  static struct sockaddr_in names[BATCH];
  static uint8_t controls[BATCH][CMSG_SPACE(sizeof(struct timespec))];
  struct mmsghdr messages[BATCH];
  struct iovec vectors[BATCH];
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      vectors[i].iov_base = buffers[i];
      vectors[i].iov_len = PACKET_MAX;
      memset(&messages[i].msg_hdr, 0, sizeof(struct msghdr));
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
      messages[i].msg_hdr.msg_name = &names[i];
      messages[i].msg_hdr.msg_namelen = sizeof(names[i]);
      messages[i].msg_hdr.msg_control = controls[i];
      messages[i].msg_hdr.msg_controllen = sizeof(controls[i]);
    }
    int n = recvmmsg(leg->fd, messages, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    int64_t now = now_ns();
    cost.received += (uint64_t)n;
    for (int i = 0; i < n; i++) {
      received(id, leg, buffers[i], (int)messages[i].msg_len, &names[i], arrival_of(&messages[i].msg_hdr, now));
      if (!legs[id]) return;
    }
    if (n < BATCH) return;
  }
}

/* Queues one receive on a ready leg's socket (io_uring); the slot's completion hands it over. */
static void queue_receive(int id) {
  int k = slots_queued;
  slot_vectors[k].iov_base = slot_buffers[k];
  slot_vectors[k].iov_len = PACKET_MAX;
  struct msghdr *message = &slot_messages[k];
  memset(message, 0, sizeof(*message));
  message->msg_name = &slot_names[k];
  message->msg_namelen = sizeof(slot_names[k]);
  message->msg_iov = &slot_vectors[k];
  message->msg_iovlen = 1;
  message->msg_control = slot_controls[k];
  message->msg_controllen = sizeof(slot_controls[k]);
  slot_legs[k] = id;
  if (uring_recvmsg(ring, legs[id]->fd, message, (uint64_t)k) == 0) slots_queued++;
}

static void receive_completion(void *context, uint64_t tag, int result) {
  int64_t now = *(const int64_t *)context;
  int k = (int)tag;
  int id = slot_legs[k];
  if (result <= 0 || !legs[id]) return;
  cost.received++;
  received(id, legs[id], slot_buffers[k], result, &slot_names[k], arrival_of(&slot_messages[k], now));
}

/* Runs the queued receives (io_uring); 0, or -1 when the ring failed. */
static int run_receives(void) {
  if (slots_queued == 0) return 0;
  int64_t now = now_ns();
  int done = uring_run(ring, receive_completion, &now);
  slots_queued = 0;
  if (done < 0) {
    uring_destroy(ring);
    ring = NULL;
    return -1;
  }
  return 0;
}

/*
 * Reads what every ready socket holds. With io_uring: one receive per ready socket per pass,
 * submitted together, passes repeated while sockets stay ready (level-triggered epoll). Commands
 * on stdin are read after the pass, so no leg is dropped with a receive of its socket queued.
 * Returns 0 once stdin is closed.
 */
static int receive_ready(void) {
  struct epoll_event events[RING_ENTRIES];
  for (int pass = 0; pass < 64; pass++) {
    int n = epoll_wait(epoll_fd, events, RING_ENTRIES, 0);
    if (n <= 0) return 1;
    int commands = 0;
    for (int i = 0; i < n; i++) {
      uint32_t id = events[i].data.u32;
      if (id == UINT32_MAX) commands = 1;
      else if (!legs[id]) continue;
      else if (ring) queue_receive((int)id);
      else drain((int)id);
    }
    if (ring) run_receives();
    if (commands && !read_commands()) return 0;
    if (!ring && n < RING_ENTRIES) return 1;
  }
  return 1;
}

int main(void) {
  if (engine_srtp_init() != 0) {
    fprintf(stderr, "srtp_init failed\n");
    return 1;
  }
  srand((unsigned)(now_ns() ^ getpid()));
  const char *why = NULL;
  ring = getenv("BENCH_ENGINE_IO_URING") && !strcmp(getenv("BENCH_ENGINE_IO_URING"), "off")
             ? NULL
             : uring_create(RING_ENTRIES, &why);
  if (!ring && why) fprintf(stderr, "rtp-engine: no io_uring (%s): one system call per socket\n", why);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  epoll_fd = epoll_create1(0);
  struct epoll_event stdin_event = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, 0, &stdin_event);
  printf("ready\n");
  fflush(stdout);
  int64_t round = now_ns();
  for (;;) {
    round += 1000000;
    int64_t now = now_ns();
    if (round < now) round = now; /* fell behind: no catch-up burst */
    struct timespec until = {.tv_sec = round / 1000000000LL, .tv_nsec = round % 1000000000LL};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
    int64_t t0 = cpu_ns();
    if (!receive_ready()) return 0;
    int64_t t1 = cpu_ns();
    send_due();
    cost.receive_ns += t1 - t0;
    cost.send_ns += cpu_ns() - t1;
    cost.rounds++;
  }
}
