/*
 * The native media data plane: the types every part shares.
 *
 * A plane owns N media threads. Each thread owns an epoll set of its legs' UDP sockets (Node's own
 * sockets: Node stops reading them, the thread reads and writes them directly) and preallocated
 * buffers for one batch of datagrams in and one queue of datagrams out. A leg is one client's
 * connection: its socket, its two SRTP contexts (srtp.h, one per direction), the SSRCs the client
 * declared, its reception statistics and voice activity, its outgoing slots (each with its own
 * numbering, see continuity.h) and the outputs its audio goes to (slots of other legs).
 *
 * Locking (never two leg locks at once, and a leg lock is never held while taking a thread lock):
 * - a thread holds its own `lock` for a whole round (reading sockets, forwarding, flushing sends);
 *   the JavaScript thread takes it to add or remove a socket and, on a leg's close, as a barrier
 *   that no round still holds a pointer to the leg or its fd;
 * - a leg's `lock` guards everything in the leg: its receive state (taken by its own thread while it
 *   decrypts a batch), its send state (taken by whichever thread forwards to it, one batch per
 *   output) and the JavaScript thread's changes (route, remote address, close).
 */
#ifndef PARLEY_PLANE_H
#define PARLEY_PLANE_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "continuity.h"
#include "reception.h"
#include "srtp.h"
#include "uring.h"

/* Datagrams read per recvmmsg call, and recvmmsg calls per socket per round (fairness). */
#define RECV_BATCH 32
#define RECV_CALLS_PER_ROUND 4
/* The largest datagram read whole (a longer one is truncated and dropped as malformed). */
#define RECV_BYTES 4096
/* Outgoing datagrams queued per thread before a flush (one io_uring submission, or sendmmsg per
 * run of one socket). */
#define SEND_QUEUE 256
/* The largest RTP packet sent: a 12-byte header, the payload and the SRTP tag. */
#define SEND_BYTES (RECV_BYTES + SRTP_MAX_TAG_BYTES)
/* Outputs one source may have (slots of other legs that carry it). */
#define MAX_OUTPUTS 1024
#define MAX_THREADS 256
#define MAX_SSRCS 64
#define MAX_SLOTS 64
/* Datagrams waiting for the JavaScript thread, per leg, before more are dropped (and counted). */
#define JS_QUEUE 256

/* Indexes into a leg's stats (a Float64Array owned by JavaScript; native-plane.ts names them). */
enum {
  STAT_PACKETS_IN,
  STAT_PACKETS_OUT,
  STAT_BYTES_IN,
  STAT_BYTES_OUT,
  STAT_LAST_PACKET_AT,
  STAT_SSRC,
  STAT_BASE,
  STAT_MAX,
  STAT_RECEIVED,
  STAT_JITTER,
  STAT_SPEAKING,
  STAT_LOUDNESS,
  STAT_DROP_REPLAY,
  STAT_DROP_TOO_OLD,
  STAT_DROP_AUTH_FAILED,
  STAT_DROP_UNKNOWN_SSRC,
  STAT_DROP_MALFORMED,
  STAT_DROP_JS_QUEUE_FULL,
  STAT_DROP_SEND_FAILED,
  STAT_DATAGRAMS_TO_JS,
  STAT_SLOT_BASE,
};
enum { SLOT_PACKETS_SENT, SLOT_OCTETS_SENT, SLOT_LAST_TIMESTAMP, SLOT_LAST_SENT_AT, STAT_SLOT_STRIDE };

typedef struct leg leg_t;
typedef struct plane plane_t;
typedef struct media_thread media_thread_t;

/* One SSRC the client declared, with its rollover counter and replay window. */
typedef struct {
  uint32_t ssrc;
  srtp_replay_t replay;
} rx_stream_t;

/* One of a leg's outgoing streams. */
typedef struct {
  uint32_t ssrc;
  uint8_t payload_type;
  leg_t *source; /* the native leg whose audio it carries, NULL: silent (or fed by sendFrom) */
  continuity_t continuity;
} slot_t;

/* A place a leg's audio goes: slot `slot` of `target`. */
typedef struct {
  leg_t *target;
  int slot;
} output_t;

/* An authenticated, decrypted RTP packet of the batch being forwarded (in the thread's buffers). */
typedef struct {
  const uint8_t *payload;
  int length;
  uint32_t ssrc;
  uint32_t roc;
  uint16_t seq;
  uint32_t timestamp;
  int marker;
  double arrived_at; /* ms since the epoch */
} inbound_t;

/* The JavaScript-side handle of a leg (a napi External): outlives the leg if JavaScript keeps it. */
typedef struct {
  leg_t *leg;
} leg_handle_t;

struct leg {
  uint64_t id; /* unique in the process, never reused: the continuity's name for a source */
  plane_t *plane;
  media_thread_t *thread;
  pthread_mutex_t lock;
  int fd;
  int family; /* the socket's address family */
  struct sockaddr_storage remote;
  socklen_t remote_length;
  int can_send;
  int closed;
  int forward_to_js;
  int audio_level_id;
  srtp_context_t rx;
  srtp_context_t tx;
  int tag_length;
  rx_stream_t streams[MAX_SSRCS];
  int stream_count;
  slot_t slots[MAX_SLOTS];
  int slot_count;
  output_t *outputs;
  int output_count;
  int output_capacity;
  double *stats;
  reception_t reception;
  voice_t voice;
  /* JavaScript thread only. */
  napi_threadsafe_function tsfn;
  napi_ref stats_ref;
  napi_ref on_datagram_ref;
  napi_ref on_rtp_ref;
  leg_handle_t *handle;
  leg_t *next_in_plane;
  leg_t *prev_in_plane;
};

struct media_thread {
  plane_t *plane;
  int index;
  pthread_t tid;
  int started;
  int epoll_fd;
  int wake_fd;
  pthread_mutex_t lock;
  volatile int stop;
  int legs; /* how many legs it serves (JavaScript thread only) */
  /* Its io_uring (NULL: plain system calls), and the ready legs of a round's receives: the leg
   * whose datagram lands in messages[i] and its length (or -errno). */
  uring_t *ring;
  int ring_refused; /* an operation came back refused: the ring goes at the end of the step */
  leg_t *ready[RECV_BATCH];
  int received[RECV_BATCH];
  /* One batch in. */
  struct mmsghdr messages[RECV_BATCH];
  struct iovec vectors[RECV_BATCH];
  struct sockaddr_storage names[RECV_BATCH];
  uint8_t controls[RECV_BATCH][64];
  uint8_t buffers[RECV_BATCH][RECV_BYTES];
  inbound_t inbound[RECV_BATCH];
  int inbound_count;
  /* The outputs of the source being forwarded, copied under its lock. */
  output_t outputs[MAX_OUTPUTS];
  int output_count;
  /* The queue out. */
  struct {
    int fd;
    struct sockaddr_storage to;
    socklen_t to_length;
    int length;
    uint8_t data[SEND_BYTES];
  } queue[SEND_QUEUE];
  int queued;
  struct mmsghdr send_messages[SEND_QUEUE];
  struct iovec send_vectors[SEND_QUEUE];
};

struct plane {
  int thread_count;
  /* How the threads batch their system calls: "io_uring", or why they make plain ones. */
  const char *batching;
  int closed;
  media_thread_t **threads;
  leg_t *legs; /* every open leg (JavaScript thread only) */
  napi_ref self_ref; /* keeps the handle (and so the plane) alive until close() */
  /* sendFrom's packet, built on the JavaScript thread. */
  uint8_t scratch[SEND_BYTES];
};

/* plane.c */
const char *plane_start(plane_t *plane, int threads, int io_uring);
void plane_stop(plane_t *plane);
int plane_watch(media_thread_t *thread, leg_t *leg);
void plane_unwatch_barrier(plane_t *plane, leg_t *leg);
void plane_queue_flush(media_thread_t *thread);

/* leg.c */
void leg_drain(media_thread_t *thread, leg_t *leg);
/* The datagram in the thread's messages[index] (read by the thread's io_uring) from `leg`'s socket. */
void leg_receive(media_thread_t *thread, leg_t *leg, int index);
/* sendFrom: a packet from a source that is not a native leg, sent on the calling thread. */
void leg_send_from(leg_t *leg, int slot, uint64_t source, const inbound_t *packet);
/* Slot `slot` of `target` carries `source` (NULL: nothing); NULL, or why it cannot. */
const char *leg_route(leg_t *target, int slot, leg_t *source);
/* Marks the leg closed and unlinks it from every route (JavaScript thread, before the barrier). */
void leg_detach(leg_t *leg);

/* addon.c: hands a copy of a datagram (or of an RTP packet's fields and payload) to JavaScript. */
void js_datagram(leg_t *leg, const uint8_t *data, int length, const struct sockaddr_storage *from);
void js_rtp(leg_t *leg, const inbound_t *packet, int audio_level);

/* srtp-keys.c: one direction's context from master keys (`auth_key` NULL), or from session keys
 * (`auth_key` given; empty for GCM). NULL, or why not. */
const char *srtp_keys_create(srtp_context_t *context, int profile, const uint8_t *key, size_t key_length,
                             const uint8_t *salt, size_t salt_length, const uint8_t *auth_key, size_t auth_key_length,
                             int inbound);
int srtp_keys_tag_length(int profile);

/* clock */
double epoch_ms(void);

#endif
