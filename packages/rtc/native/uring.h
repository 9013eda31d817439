/*
 * A minimal io_uring (Linux 5.4 on) for the media threads' rounds: a round's receives on every
 * ready socket, then its sends on every target socket, each submitted and completed in one system
 * call instead of one call per socket. Every operation is non-blocking (MSG_DONTWAIT), so it
 * completes while the call submits it; nothing is left in flight after uring_run returns, and the
 * messages and buffers it used are the caller's again. Where io_uring is missing or refused (an old
 * kernel, a seccomp profile, kernel.io_uring_disabled), uring_create says why and the media
 * threads make the plain system calls.
 */
#ifndef PARLEY_URING_H
#define PARLEY_URING_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct uring uring_t;

/* One completion: the operation's tag and its result (bytes, or -errno). */
typedef void (*uring_done_t)(void *context, uint64_t tag, int result);

/* A ring for `entries` operations at a time, or NULL with `*why` set. */
uring_t *uring_create(unsigned entries, const char **why);
void uring_destroy(uring_t *ring);
/* Queues a non-blocking recvmsg or sendmsg on `fd` tagged `tag`: 0, or -1 when the ring is full
 * (uring_run it first). `message` must stay valid until uring_run returns. */
int uring_recvmsg(uring_t *ring, int fd, struct msghdr *message, uint64_t tag);
int uring_sendmsg(uring_t *ring, int fd, struct msghdr *message, uint64_t tag);
/* Submits everything queued, waits until all of it completed and reports each completion to
 * `done`. Returns how many completed, or -1 when the ring failed (the caller stops using it). */
int uring_run(uring_t *ring, uring_done_t done, void *context);

#endif
