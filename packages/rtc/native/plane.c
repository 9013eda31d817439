/*
 * The media threads. Each waits on its epoll set (its legs' sockets and a wake-up eventfd); once
 * something arrives it works in rounds of about a millisecond: take the thread's lock, read every
 * ready socket, forward, send what was queued, release the lock, sleep to the next millisecond. A
 * round that found nothing sends the thread back to waiting. So under load the cost per packet does
 * not grow with wake-ups (one per round, whatever the packet rate), and a packet waits about 1 ms at
 * most.
 *
 * With io_uring (uring.h) a round makes a handful of system calls whatever the number of legs: one
 * submission reads one datagram from every ready socket (again for those epoll says still have
 * more, up to RECV_CALLS_PER_ROUND times), one sends every queued datagram to every target. A leg
 * has its own socket (the client's ICE pair ends at it), so without io_uring each ready socket costs
 * a recvmmsg and each target socket a sendmmsg: at 50 packets a second per leg that is about two
 * system calls per forwarded packet, each a microsecond or more in a virtual machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "plane.h"

#define ROUND_NS 1000000L
#define EVENTS 256

static int64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether an operation's result says the ring cannot do socket operations at all (a kernel or a
 * sandbox that sets io_uring up but refuses its recvmsg or sendmsg): the thread then drops it.
 * (Not EPERM: a firewall rule that rejects a datagram makes a send fail with it.) */
static int refused_by_ring(int result) {
  return result == -EINVAL || result == -EOPNOTSUPP || result == -ENOSYS || result == -EBADF;
}

/* A receive of the round's io_uring submission completed (tag: its index in the ready legs). */
static void on_received(void *context, uint64_t tag, int result) {
  media_thread_t *t = context;
  t->received[tag] = result;
  if (refused_by_ring(result)) t->ring_refused = 1;
}

/* The thread's io_uring failed: it makes plain system calls from now on. */
static void drop_ring(media_thread_t *t) {
  uring_destroy(t->ring);
  t->ring = NULL;
  t->ring_refused = 0;
}

/* Reads the datagrams t->ready names (one per message slot; a leg's slots in a row, read in that
 * order) in one submission and forwards each; false when the ring failed (the legs were drained
 * with plain system calls instead). */
static int receive_slots(media_thread_t *t, int count) {
  for (int i = 0; i < count; i++) {
    struct msghdr *message = &t->messages[i].msg_hdr;
    message->msg_namelen = sizeof(t->names[i]);
    message->msg_controllen = sizeof(t->controls[i]);
    message->msg_flags = 0;
    t->received[i] = -EAGAIN;
    uring_recvmsg(t->ring, t->ready[i]->fd, message, (uint64_t)i);
  }
  if (uring_run(t->ring, on_received, t) < 0 || t->ring_refused) {
    /* What a refused ring did not read is still in the sockets: read it the plain way. */
    drop_ring(t);
    for (int i = 0; i < count; i++) {
      if (i == 0 || t->ready[i] != t->ready[i - 1]) leg_drain(t, t->ready[i]);
    }
    return 0;
  }
  for (int i = 0; i < count; i++) {
    if (t->received[i] < 0) continue; /* nothing after all, or an error the socket reports again */
    t->messages[i].msg_len = (unsigned)t->received[i];
    leg_receive(t, t->ready[i], i);
  }
  return 1;
}

/*
 * One round with io_uring, under the thread's lock; returns how many sockets had something. The
 * first pass reads one datagram from every ready socket (at 50 packets a second a leg rarely has
 * more in a millisecond); later passes, up to RECV_CALLS_PER_ROUND, ask epoll which sockets still
 * have datagrams (a burst, a flood) and read up to a batch from each.
 */
static int round_uring(media_thread_t *t, struct epoll_event *events) {
  int ready = 0;
  for (int pass = 0; pass < RECV_CALLS_PER_ROUND && t->ring; pass++) {
    int n = epoll_wait(t->epoll_fd, events, EVENTS, 0);
    if (n <= 0) break;
    int legs = 0;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr) {
        legs++;
        continue;
      }
      uint64_t value;
      if (read(t->wake_fd, &value, sizeof(value)) < 0) {
        /* nothing to read: another wake-up took it */
      }
    }
    if (pass == 0) ready = legs;
    if (legs == 0) break;
    int per_leg = pass == 0 ? 1 : (RECV_BATCH / legs > 1 ? RECV_BATCH / legs : 1);
    int slots = 0;
    for (int i = 0; i < n && t->ring; i++) {
      leg_t *leg = events[i].data.ptr;
      if (!leg) continue;
      for (int k = 0; k < per_leg; k++) {
        t->ready[slots++] = leg;
        if (slots == RECV_BATCH) {
          if (!receive_slots(t, slots)) break;
          slots = 0;
        }
      }
    }
    if (slots > 0 && t->ring) receive_slots(t, slots);
  }
  plane_queue_flush(t);
  return ready;
}

/* One round, under the thread's lock; returns how many sockets had something. */
static int round_once(media_thread_t *t, struct epoll_event *events) {
  if (t->ring) return round_uring(t, events);
  int ready = 0;
  for (;;) {
    int n = epoll_wait(t->epoll_fd, events, EVENTS, 0);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      leg_t *leg = events[i].data.ptr;
      if (!leg) {
        uint64_t count;
        if (read(t->wake_fd, &count, sizeof(count)) < 0) {
          /* nothing to read: another wake-up took it */
        }
        continue;
      }
      ready++;
      leg_drain(t, leg);
    }
    if (n < EVENTS) break;
  }
  plane_queue_flush(t);
  return ready;
}

static void *thread_main(void *argument) {
  media_thread_t *t = argument;
  struct epoll_event events[EVENTS];
  char name[16];
  snprintf(name, sizeof(name), "parley-media-%d", t->index);
  pthread_setname_np(pthread_self(), name);
  for (;;) {
    /* Idle: wait for anything. The events are not used: a leg may close before the lock is taken,
     * so the round asks epoll again under the lock (the sockets are still ready, level-triggered). */
    int n = epoll_wait(t->epoll_fd, events, 1, -1);
    if (n < 0 && errno != EINTR) return NULL;
    int64_t next = monotonic_ns();
    for (;;) {
      pthread_mutex_lock(&t->lock);
      if (t->stop) {
        pthread_mutex_unlock(&t->lock);
        return NULL;
      }
      int ready = round_once(t, events);
      pthread_mutex_unlock(&t->lock);
      if (!ready) break;
      next += ROUND_NS;
      int64_t now = monotonic_ns();
      if (next < now) next = now; /* fell behind: no catch-up burst */
      struct timespec until = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
      }
    }
  }
}

/* A send of the flush's io_uring submission completed: a datagram the kernel refused (a full
 * socket buffer) is dropped, as a UDP send would be. */
static void on_sent(void *context, uint64_t tag, int result) {
  media_thread_t *t = context;
  (void)tag;
  if (refused_by_ring(result)) t->ring_refused = 1;
}

/* Every queued datagram in one io_uring submission; 0, or -1 when the ring failed. */
static int flush_uring(media_thread_t *t) {
  for (int k = 0; k < t->queued; k++) {
    struct msghdr *message = &t->send_messages[k].msg_hdr;
    t->send_vectors[k].iov_base = t->queue[k].data;
    t->send_vectors[k].iov_len = (size_t)t->queue[k].length;
    message->msg_name = &t->queue[k].to;
    message->msg_namelen = t->queue[k].to_length;
    message->msg_iov = &t->send_vectors[k];
    message->msg_iovlen = 1;
    message->msg_control = NULL;
    message->msg_controllen = 0;
    message->msg_flags = 0;
    if (uring_sendmsg(t->ring, t->queue[k].fd, message, (uint64_t)k) != 0) {
      /* The ring is full (it has room for a whole queue, so this does not happen): send what it holds. */
      if (uring_run(t->ring, on_sent, t) < 0) return -1;
      uring_sendmsg(t->ring, t->queue[k].fd, message, (uint64_t)k);
    }
  }
  return uring_run(t->ring, on_sent, t) < 0 ? -1 : 0;
}

void plane_queue_flush(media_thread_t *t) {
  if (t->queued == 0) return;
  if (t->ring) {
    if (flush_uring(t) == 0 && !t->ring_refused) {
      t->queued = 0;
      return;
    }
    /* The ring failed or refused: the queue goes the plain way (a datagram it did send goes twice,
     * and the receiver's replay window drops the copy). */
    drop_ring(t);
  }
  int i = 0;
  while (i < t->queued) {
    int fd = t->queue[i].fd;
    int run = 1;
    while (i + run < t->queued && t->queue[i + run].fd == fd) run++;
    for (int k = 0; k < run; k++) {
      struct msghdr *message = &t->send_messages[k].msg_hdr;
      t->send_vectors[k].iov_base = t->queue[i + k].data;
      t->send_vectors[k].iov_len = (size_t)t->queue[i + k].length;
      message->msg_name = &t->queue[i + k].to;
      message->msg_namelen = t->queue[i + k].to_length;
      message->msg_iov = &t->send_vectors[k];
      message->msg_iovlen = 1;
      message->msg_control = NULL;
      message->msg_controllen = 0;
      message->msg_flags = 0;
    }
    int done = 0;
    while (done < run) {
      int sent = sendmmsg(fd, &t->send_messages[done], (unsigned)(run - done), MSG_DONTWAIT);
      /* A datagram the kernel refused (a full socket buffer) is dropped, as a UDP send would be. */
      done += sent > 0 ? sent : 1;
    }
    i += run;
  }
  t->queued = 0;
}

static void thread_free(media_thread_t *t) {
  uring_destroy(t->ring);
  if (t->epoll_fd >= 0) close(t->epoll_fd);
  if (t->wake_fd >= 0) close(t->wake_fd);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

const char *plane_start(plane_t *plane, int threads, int io_uring) {
  plane->batching = io_uring ? NULL : "io_uring turned off";
  plane->threads = calloc((size_t)threads, sizeof(media_thread_t *));
  if (!plane->threads) return "out of memory";
  for (int i = 0; i < threads; i++) {
    media_thread_t *t = calloc(1, sizeof(media_thread_t));
    if (!t) return "out of memory";
    t->plane = plane;
    t->index = i;
    t->epoll_fd = t->wake_fd = -1;
    pthread_mutex_init(&t->lock, NULL);
    plane->threads[i] = t;
    plane->thread_count = i + 1;
    for (int k = 0; k < RECV_BATCH; k++) {
      t->vectors[k].iov_base = t->buffers[k];
      t->vectors[k].iov_len = RECV_BYTES;
      t->messages[k].msg_hdr.msg_iov = &t->vectors[k];
      t->messages[k].msg_hdr.msg_iovlen = 1;
      t->messages[k].msg_hdr.msg_name = &t->names[k];
      t->messages[k].msg_hdr.msg_control = t->controls[k];
    }
    if (!plane->batching) {
      const char *why = NULL;
      /* Room for a full send queue in one submission. */
      t->ring = uring_create(SEND_QUEUE, &why);
      if (!t->ring) plane->batching = why;
    }
    t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->epoll_fd < 0 || t->wake_fd < 0) return "cannot create the media thread's epoll set";
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, t->wake_fd, &event) != 0) return "cannot watch the wake-up eventfd";
    if (pthread_create(&t->tid, NULL, thread_main, t) != 0) return "cannot start a media thread";
    t->started = 1;
  }
  if (io_uring && plane->batching) {
    /* One thread without a ring: none uses one (the plane batches one way). */
    for (int i = 0; i < threads; i++) {
      media_thread_t *t = plane->threads[i];
      pthread_mutex_lock(&t->lock);
      drop_ring(t);
      pthread_mutex_unlock(&t->lock);
    }
  }
  if (!plane->batching) plane->batching = "io_uring";
  return NULL;
}

void plane_stop(plane_t *plane) {
  for (int i = 0; i < plane->thread_count; i++) {
    media_thread_t *t = plane->threads[i];
    if (!t->started) continue;
    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_mutex_unlock(&t->lock);
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof(one)) < 0) {
      /* the counter is full: the thread is being woken already */
    }
    pthread_join(t->tid, NULL);
    t->started = 0;
  }
  for (int i = 0; i < plane->thread_count; i++) thread_free(plane->threads[i]);
  free(plane->threads);
  plane->threads = NULL;
  plane->thread_count = 0;
}

int plane_watch(media_thread_t *t, leg_t *leg) {
  struct epoll_event event = {.events = EPOLLIN, .data.ptr = leg};
  pthread_mutex_lock(&t->lock);
  int result = epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, leg->fd, &event);
  if (result == 0) t->legs++;
  pthread_mutex_unlock(&t->lock);
  return result;
}

void plane_unwatch_barrier(plane_t *plane, leg_t *leg) {
  /* Every thread's lock once: a round that copied a pointer to this leg (its own thread's, or one
   * forwarding to it across threads) has ended, and none can start with it (it is unlinked). */
  for (int i = 0; i < plane->thread_count; i++) {
    media_thread_t *t = plane->threads[i];
    pthread_mutex_lock(&t->lock);
    if (t == leg->thread) {
      epoll_ctl(t->epoll_fd, EPOLL_CTL_DEL, leg->fd, NULL);
      t->legs--;
    }
    pthread_mutex_unlock(&t->lock);
  }
}
