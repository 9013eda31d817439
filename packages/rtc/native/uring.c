/* See uring.h. The ring is driven with the raw system calls (no liburing needed to build). */
#include "uring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#define PARLEY_HAVE_URING 1
#endif
#endif

#ifdef PARLEY_HAVE_URING
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct uring {
  int fd;
  unsigned entries;
  /* The submission queue: the kernel's head, our tail (published on run), the index array and slots. */
  unsigned *sq_head;
  unsigned *sq_tail;
  unsigned *sq_array;
  unsigned sq_mask;
  struct io_uring_sqe *sqes;
  unsigned tail;
  unsigned queued;
  /* The completion queue. */
  unsigned *cq_head;
  unsigned *cq_tail;
  unsigned cq_mask;
  struct io_uring_cqe *cqes;
  void *rings;
  size_t rings_bytes;
  size_t sqes_bytes;
};

uring_t *uring_create(unsigned entries, const char **why) {
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
  if (fd < 0) {
    *why = errno == ENOSYS ? "the kernel has no io_uring"
           : errno == EPERM ? "io_uring is not permitted here (kernel.io_uring_disabled or a seccomp profile)"
                            : "io_uring_setup failed";
    return NULL;
  }
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP)) {
    close(fd);
    *why = "the kernel's io_uring is too old (Linux 5.5 or later needed)";
    return NULL;
  }
  uring_t *r = calloc(1, sizeof(uring_t));
  if (!r) {
    close(fd);
    *why = "out of memory";
    return NULL;
  }
  size_t sq_bytes = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_bytes = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  r->fd = fd;
  r->rings_bytes = sq_bytes > cq_bytes ? sq_bytes : cq_bytes;
  r->sqes_bytes = p.sq_entries * sizeof(struct io_uring_sqe);
  r->rings = mmap(NULL, r->rings_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  void *sqes = mmap(NULL, r->sqes_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (r->rings == MAP_FAILED || sqes == MAP_FAILED) {
    if (r->rings != MAP_FAILED) munmap(r->rings, r->rings_bytes);
    if (sqes != MAP_FAILED) munmap(sqes, r->sqes_bytes);
    close(fd);
    free(r);
    *why = "cannot map the io_uring queues";
    return NULL;
  }
  char *base = r->rings;
  r->sqes = sqes;
  r->entries = p.sq_entries;
  r->sq_head = (unsigned *)(base + p.sq_off.head);
  r->sq_tail = (unsigned *)(base + p.sq_off.tail);
  r->sq_array = (unsigned *)(base + p.sq_off.array);
  r->sq_mask = *(unsigned *)(base + p.sq_off.ring_mask);
  r->cq_head = (unsigned *)(base + p.cq_off.head);
  r->cq_tail = (unsigned *)(base + p.cq_off.tail);
  r->cq_mask = *(unsigned *)(base + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(base + p.cq_off.cqes);
  r->tail = *r->sq_tail;
  return r;
}

void uring_destroy(uring_t *r) {
  if (!r) return;
  munmap(r->sqes, r->sqes_bytes);
  munmap(r->rings, r->rings_bytes);
  close(r->fd);
  free(r);
}

static struct io_uring_sqe *next_sqe(uring_t *r) {
  unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
  if (r->tail - head >= r->entries) return NULL;
  unsigned index = r->tail & r->sq_mask;
  struct io_uring_sqe *sqe = &r->sqes[index];
  memset(sqe, 0, sizeof(*sqe));
  r->sq_array[index] = index;
  r->tail++;
  r->queued++;
  return sqe;
}

static int queue_message(uring_t *r, int opcode, int fd, struct msghdr *message, uint64_t tag) {
  struct io_uring_sqe *sqe = next_sqe(r);
  if (!sqe) return -1;
  sqe->opcode = (uint8_t)opcode;
  sqe->fd = fd;
  sqe->addr = (uint64_t)(uintptr_t)message;
  sqe->len = 1;
  sqe->msg_flags = MSG_DONTWAIT;
  sqe->user_data = tag;
  return 0;
}

int uring_recvmsg(uring_t *r, int fd, struct msghdr *message, uint64_t tag) {
  return queue_message(r, IORING_OP_RECVMSG, fd, message, tag);
}

int uring_sendmsg(uring_t *r, int fd, struct msghdr *message, uint64_t tag) {
  return queue_message(r, IORING_OP_SENDMSG, fd, message, tag);
}

/* Reports the completions posted so far; returns how many. */
static unsigned reap(uring_t *r, uring_done_t done, void *context) {
  unsigned head = *r->cq_head;
  unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
  unsigned count = 0;
  for (; head != tail; head++, count++) {
    struct io_uring_cqe *cqe = &r->cqes[head & r->cq_mask];
    done(context, cqe->user_data, cqe->res);
  }
  __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  return count;
}

int uring_run(uring_t *r, uring_done_t done, void *context) {
  unsigned submitted = r->queued;
  if (submitted == 0) return 0;
  r->queued = 0;
  __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
  /* Non-blocking operations complete while they are submitted: usually this one call does all. */
  for (unsigned left = submitted; left > 0;) {
    int entered = (int)syscall(__NR_io_uring_enter, r->fd, left, 0, 0, NULL, 0);
    if (entered < 0 && errno == EINTR) continue;
    if (entered <= 0) return -1;
    left -= (unsigned)entered < left ? (unsigned)entered : left;
  }
  unsigned completed = reap(r, done, context);
  while (completed < submitted) {
    int entered = (int)syscall(__NR_io_uring_enter, r->fd, 0, submitted - completed, IORING_ENTER_GETEVENTS, NULL, 0);
    if (entered < 0 && errno != EINTR) return -1;
    completed += reap(r, done, context);
  }
  return (int)completed;
}

#else

uring_t *uring_create(unsigned entries, const char **why) {
  (void)entries;
  *why = "built without io_uring's header (linux/io_uring.h)";
  return NULL;
}
void uring_destroy(uring_t *r) { (void)r; }
int uring_recvmsg(uring_t *r, int fd, struct msghdr *message, uint64_t tag) { return -1; }
int uring_sendmsg(uring_t *r, int fd, struct msghdr *message, uint64_t tag) { return -1; }
int uring_run(uring_t *r, uring_done_t done, void *context) { return -1; }

#endif
