/*
 * The Node-API face of the native data plane: argument checks, the handles JavaScript holds, and
 * the thread-safe functions that carry datagrams (STUN, DTLS, RTCP) and, on request, RTP to
 * JavaScript. packages/rtc/src/native-plane.ts wraps these functions in the typed API.
 *
 * Lifetimes: a plane's memory lives until its handle is collected after close() (or the process
 * ends: an environment cleanup hook stops the threads of a plane never closed). A leg's memory lives
 * until it is closed and its thread-safe function has finished (queued datagrams are dropped);
 * its handle then points nowhere and every call on it is a no-op.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "plane.h"

static const napi_type_tag PLANE_TAG = {0x7061726c65790001ULL, 0x6e61746976650001ULL};
static const napi_type_tag LEG_TAG = {0x7061726c65790002ULL, 0x6e61746976650002ULL};

static uint64_t next_leg_id = 1;
static double live_legs;
static double live_planes;

/* ------------------------------------------------------------------ argument helpers */

#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) return throw_last(env);                                                                     \
  } while (0)

static napi_value throw_last(napi_env env) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, NULL, info && info->error_message ? info->error_message : "Node-API call failed");
  }
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int get_int(napi_env env, napi_value value, int64_t *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return 0;
  return napi_get_value_int64(env, value, out) == napi_ok;
}

static int get_double(napi_env env, napi_value value, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return 0;
  return napi_get_value_double(env, value, out) == napi_ok;
}

static int get_bool(napi_env env, napi_value value, bool *out) { return napi_get_value_bool(env, value, out) == napi_ok; }

static int get_string(napi_env env, napi_value value, char *out, size_t size) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok) return 0;
  return length < size - 1;
}

static int get_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return 0;
  return napi_get_buffer_info(env, value, (void **)data, length) == napi_ok;
}

/* A typed array of `want` elements; its data and length. */
static int get_typed(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return 0;
  return type == want;
}

static void *get_tagged(napi_env env, napi_value value, const napi_type_tag *tag) {
  bool matches = false;
  void *data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return NULL;
  if (napi_check_object_type_tag(env, value, tag, &matches) != napi_ok || !matches) return NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return data;
}

/* `address` (IPv4 or IPv6, an IPv6 zone allowed) and `port` as a socket address of `family` (an
 * IPv4 address on an IPv6 socket becomes v4-mapped). */
static int parse_address(int family, const char *address, int64_t port, struct sockaddr_storage *out,
                         socklen_t *length) {
  if (port < 1 || port > 65535) return 0;
  memset(out, 0, sizeof(*out));
  struct in_addr v4;
  if (inet_pton(AF_INET, address, &v4) == 1) {
    if (family == AF_INET) {
      struct sockaddr_in *sin = (struct sockaddr_in *)out;
      sin->sin_family = AF_INET;
      sin->sin_port = htons((uint16_t)port);
      sin->sin_addr = v4;
      *length = sizeof(*sin);
      return 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sin6->sin6_addr.s6_addr[12], &v4, 4);
    *length = sizeof(*sin6);
    return 1;
  }
  if (family != AF_INET6) return 0;
  char host[64];
  const char *zone = strchr(address, '%');
  size_t host_length = zone ? (size_t)(zone - address) : strlen(address);
  if (host_length >= sizeof(host)) return 0;
  memcpy(host, address, host_length);
  host[host_length] = 0;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) return 0;
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons((uint16_t)port);
  if (zone) {
    unsigned scope = if_nametoindex(zone + 1);
    sin6->sin6_scope_id = scope ? scope : (unsigned)strtoul(zone + 1, NULL, 10);
  }
  *length = sizeof(*sin6);
  return 1;
}

/* ------------------------------------------------------------------ datagrams to JavaScript */

typedef struct {
  int is_rtp;
  int length;
  char address[INET6_ADDRSTRLEN];
  int port;
  uint32_t ssrc;
  uint32_t roc;
  uint16_t seq;
  uint32_t timestamp;
  int marker;
  int audio_level;
  uint8_t data[];
} js_item_t;

/* Queues an item for the leg's JavaScript callbacks (the leg is locked); a full queue drops it. */
static void js_post(leg_t *leg, js_item_t *item) {
  if (!leg->tsfn || napi_call_threadsafe_function(leg->tsfn, item, napi_tsfn_nonblocking) != napi_ok) {
    leg->stats[STAT_DROP_JS_QUEUE_FULL]++;
    free(item);
    return;
  }
  leg->stats[STAT_DATAGRAMS_TO_JS]++;
}

void js_datagram(leg_t *leg, const uint8_t *data, int length, const struct sockaddr_storage *from) {
  js_item_t *item = malloc(sizeof(js_item_t) + (size_t)length);
  if (!item) return;
  memset(item, 0, sizeof(*item));
  item->length = length;
  memcpy(item->data, data, (size_t)length);
  if (from->ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)from;
    inet_ntop(AF_INET, &sin->sin_addr, item->address, sizeof(item->address));
    item->port = ntohs(sin->sin_port);
  } else if (from->ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)from;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], item->address, sizeof(item->address));
    } else {
      inet_ntop(AF_INET6, &sin6->sin6_addr, item->address, sizeof(item->address));
    }
    item->port = ntohs(sin6->sin6_port);
  }
  js_post(leg, item);
}

void js_rtp(leg_t *leg, const inbound_t *packet, int audio_level) {
  js_item_t *item = malloc(sizeof(js_item_t) + (size_t)packet->length);
  if (!item) return;
  memset(item, 0, sizeof(*item));
  item->is_rtp = 1;
  item->length = packet->length;
  memcpy(item->data, packet->payload, (size_t)packet->length);
  item->ssrc = packet->ssrc;
  item->roc = packet->roc;
  item->seq = packet->seq;
  item->timestamp = packet->timestamp;
  item->marker = packet->marker;
  item->audio_level = audio_level;
  js_post(leg, item);
}

/* On the JavaScript thread: one queued item to onDatagram or onRtp. A throw is an uncaught
 * exception, as in a socket's own event. */
static void call_js(napi_env env, napi_value unused, void *context, void *data) {
  (void)unused;
  leg_t *leg = context;
  js_item_t *item = data;
  if (!env || leg->closed) {
    free(item);
    return;
  }
  napi_ref ref = item->is_rtp ? leg->on_rtp_ref : leg->on_datagram_ref;
  napi_value callback, undefined, buffer, result, args[7];
  void *copy;
  if (!ref || napi_get_reference_value(env, ref, &callback) != napi_ok || !callback ||
      napi_get_undefined(env, &undefined) != napi_ok ||
      napi_create_buffer_copy(env, (size_t)item->length, item->data, &copy, &buffer) != napi_ok) {
    free(item);
    return;
  }
  napi_status status;
  if (item->is_rtp) {
    napi_create_uint32(env, item->ssrc, &args[0]);
    napi_create_uint32(env, item->roc, &args[1]);
    napi_create_uint32(env, item->seq, &args[2]);
    napi_create_uint32(env, item->timestamp, &args[3]);
    napi_get_boolean(env, item->marker, &args[4]);
    args[5] = buffer;
    napi_create_int32(env, item->audio_level, &args[6]);
    status = napi_call_function(env, undefined, callback, 7, args, &result);
  } else {
    args[0] = buffer;
    napi_create_string_utf8(env, item->address, NAPI_AUTO_LENGTH, &args[1]);
    napi_create_int32(env, item->port, &args[2]);
    status = napi_call_function(env, undefined, callback, 3, args, &result);
  }
  free(item);
  if (status == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

static void free_leg(leg_t *leg) {
  if (leg->handle) leg->handle->leg = NULL;
  srtp_context_free(&leg->rx);
  srtp_context_free(&leg->tx);
  free(leg->outputs);
  pthread_mutex_destroy(&leg->lock);
  free(leg);
  live_legs--;
}

/* The leg's thread-safe function has finished: the last use of its callbacks. */
static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  leg_t *leg = data;
  if (leg->on_datagram_ref) napi_delete_reference(env, leg->on_datagram_ref);
  if (leg->on_rtp_ref) napi_delete_reference(env, leg->on_rtp_ref);
  leg->on_datagram_ref = leg->on_rtp_ref = NULL;
  /* The environment is ending with the leg still open: its thread must not post any more. */
  pthread_mutex_lock(&leg->lock);
  leg->tsfn = NULL;
  pthread_mutex_unlock(&leg->lock);
  if (leg->closed) free_leg(leg);
}

/* ------------------------------------------------------------------ legs */

/* Closes a leg: when it returns, no media thread touches the leg's fd or keys again. */
static void close_leg(napi_env env, leg_t *leg) {
  if (leg->closed) return;
  plane_t *plane = leg->plane;
  leg_detach(leg);
  plane_unwatch_barrier(plane, leg);
  int off = 0;
  setsockopt(leg->fd, SOL_SOCKET, SO_TIMESTAMPNS, &off, sizeof(off));
  srtp_context_free(&leg->rx);
  srtp_context_free(&leg->tx);
  if (leg->prev_in_plane) leg->prev_in_plane->next_in_plane = leg->next_in_plane;
  else plane->legs = leg->next_in_plane;
  if (leg->next_in_plane) leg->next_in_plane->prev_in_plane = leg->prev_in_plane;
  leg->next_in_plane = leg->prev_in_plane = NULL;
  if (leg->stats_ref) napi_delete_reference(env, leg->stats_ref);
  leg->stats_ref = NULL;
  leg->stats = NULL;
  if (leg->tsfn) napi_release_threadsafe_function(leg->tsfn, napi_tsfn_abort);
  else free_leg(leg);
}

static void leg_handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  leg_handle_t *handle = data;
  if (handle->leg) handle->leg->handle = NULL;
  free(handle);
}

/* The open leg a handle names, or NULL (closed, or not a leg handle: then an exception is pending). */
static leg_t *leg_of(napi_env env, napi_value value) {
  leg_handle_t *handle = get_tagged(env, value, &LEG_TAG);
  if (!handle) {
    napi_throw_type_error(env, NULL, "not a native leg");
    return NULL;
  }
  return handle->leg && !handle->leg->closed ? handle->leg : NULL;
}

/* addLeg(plane, thread, fd, address, port, profile, localKey, localSalt, remoteKey, remoteSalt,
 *        ssrcs: Uint32Array, audioLevelId, slotSsrcs: Uint32Array, slotPayloadTypes: Uint8Array,
 *        stats: Float64Array, onDatagram, onRtp | null[, localAuthKey, remoteAuthKey]) -> leg handle
 * The keys are master keys, or session keys when the two authentication keys are given (Buffers,
 * empty for GCM): published test vectors give session keys. */
static napi_value add_leg(napi_env env, napi_callback_info info) {
  size_t argc = 19;
  napi_value argv[19];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 17) return throw_type(env, "addLeg needs 17 arguments");
  plane_t *plane = get_tagged(env, argv[0], &PLANE_TAG);
  if (!plane) return throw_type(env, "not a native plane");
  if (plane->closed) return throw_type(env, "the plane is closed");
  int64_t thread, fd, port, profile, level_id;
  char address[128];
  uint8_t *local_key, *local_salt, *remote_key, *remote_salt;
  size_t local_key_length, local_salt_length, remote_key_length, remote_salt_length;
  uint32_t *ssrcs, *slot_ssrcs;
  uint8_t *slot_types;
  double *stats;
  size_t ssrc_count, slot_count, slot_type_count, stat_count;
  napi_valuetype callback_type, rtp_type;
  if (!get_int(env, argv[1], &thread) || thread < 0 || thread >= plane->thread_count) {
    return throw_type(env, "thread out of range");
  }
  if (!get_int(env, argv[2], &fd) || fd < 0) return throw_type(env, "fd must be a file descriptor");
  if (!get_string(env, argv[3], address, sizeof(address))) return throw_type(env, "bad remote address");
  if (!get_int(env, argv[4], &port)) return throw_type(env, "bad remote port");
  if (!get_int(env, argv[5], &profile)) return throw_type(env, "bad SRTP profile");
  if (!get_bytes(env, argv[6], &local_key, &local_key_length) ||
      !get_bytes(env, argv[7], &local_salt, &local_salt_length) ||
      !get_bytes(env, argv[8], &remote_key, &remote_key_length) ||
      !get_bytes(env, argv[9], &remote_salt, &remote_salt_length)) {
    return throw_type(env, "SRTP master keys and salts must be Buffers");
  }
  static const uint8_t no_auth_key[1];
  const uint8_t *local_auth = NULL, *remote_auth = NULL;
  size_t local_auth_length = 0, remote_auth_length = 0;
  napi_valuetype auth_type = napi_undefined;
  if (argc >= 19) CHECK(napi_typeof(env, argv[17], &auth_type));
  if (auth_type != napi_undefined && auth_type != napi_null) {
    uint8_t *local_bytes, *remote_bytes;
    if (!get_bytes(env, argv[17], &local_bytes, &local_auth_length) ||
        !get_bytes(env, argv[18], &remote_bytes, &remote_auth_length)) {
      return throw_type(env, "SRTP session authentication keys must be Buffers");
    }
    /* An empty Buffer may have no data pointer; the session keys are still meant. */
    local_auth = local_auth_length ? local_bytes : no_auth_key;
    remote_auth = remote_auth_length ? remote_bytes : no_auth_key;
  }
  if (!get_typed(env, argv[10], napi_uint32_array, (void **)&ssrcs, &ssrc_count) || ssrc_count > MAX_SSRCS) {
    return throw_type(env, "ssrcs must be a Uint32Array of at most 64");
  }
  if (!get_int(env, argv[11], &level_id) || level_id < -1 || level_id > 255) {
    return throw_type(env, "bad audio level id");
  }
  if (!get_typed(env, argv[12], napi_uint32_array, (void **)&slot_ssrcs, &slot_count) ||
      !get_typed(env, argv[13], napi_uint8_array, (void **)&slot_types, &slot_type_count) ||
      slot_count != slot_type_count || slot_count < 1 || slot_count > MAX_SLOTS) {
    return throw_type(env, "slots must be 1 to 64 SSRCs and payload types");
  }
  if (!get_typed(env, argv[14], napi_float64_array, (void **)&stats, &stat_count) ||
      stat_count < (size_t)(STAT_SLOT_BASE + STAT_SLOT_STRIDE * (int)slot_count)) {
    return throw_type(env, "stats must be a Float64Array large enough for the slots");
  }
  CHECK(napi_typeof(env, argv[15], &callback_type));
  CHECK(napi_typeof(env, argv[16], &rtp_type));
  if (callback_type != napi_function) return throw_type(env, "onDatagram must be a function");
  if (rtp_type != napi_function && rtp_type != napi_null && rtp_type != napi_undefined) {
    return throw_type(env, "onRtp must be a function");
  }
  int socket_type = 0;
  socklen_t option_length = sizeof(socket_type);
  struct sockaddr_storage local;
  socklen_t local_length = sizeof(local);
  if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &socket_type, &option_length) != 0 || socket_type != SOCK_DGRAM ||
      getsockname((int)fd, (struct sockaddr *)&local, &local_length) != 0) {
    return throw_type(env, "fd is not a UDP socket");
  }

  leg_t *leg = calloc(1, sizeof(leg_t));
  if (!leg) return throw_type(env, "out of memory");
  leg->id = next_leg_id++;
  leg->plane = plane;
  leg->thread = plane->threads[thread];
  pthread_mutex_init(&leg->lock, NULL);
  leg->fd = (int)fd;
  leg->family = local.ss_family;
  leg->can_send = 1;
  leg->audio_level_id = (int)level_id;
  leg->tag_length = srtp_keys_tag_length((int)profile);
  live_legs++;
  if (!parse_address(leg->family, address, port, &leg->remote, &leg->remote_length)) {
    free_leg(leg);
    return throw_type(env, "bad remote address or port");
  }
  const char *error = srtp_keys_create(&leg->tx, (int)profile, local_key, local_key_length, local_salt,
                                       local_salt_length, local_auth, local_auth_length, 0);
  if (!error) {
    error = srtp_keys_create(&leg->rx, (int)profile, remote_key, remote_key_length, remote_salt, remote_salt_length,
                             remote_auth, remote_auth_length, 1);
    if (error) srtp_context_free(&leg->tx);
  }
  if (error) {
    free_leg(leg);
    return throw_type(env, error);
  }
  for (size_t i = 0; i < ssrc_count; i++) {
    int known = 0;
    for (int k = 0; k < leg->stream_count; k++) known |= leg->streams[k].ssrc == ssrcs[i];
    if (!known) leg->streams[leg->stream_count++] = (rx_stream_t){.ssrc = ssrcs[i]};
  }
  leg->slot_count = (int)slot_count;
  for (size_t i = 0; i < slot_count; i++) {
    leg->slots[i].ssrc = slot_ssrcs[i];
    leg->slots[i].payload_type = slot_types[i];
    continuity_init(&leg->slots[i].continuity);
  }
  reception_init(&leg->reception);
  voice_init(&leg->voice);
  leg->stats = stats;
  memset(stats, 0, sizeof(double) * stat_count);
  stats[STAT_SSRC] = -1;

  napi_value name, handle_value;
  leg_handle_t *handle = calloc(1, sizeof(leg_handle_t));
  napi_status status = handle ? napi_ok : napi_generic_failure;
  if (status == napi_ok) status = napi_create_reference(env, argv[14], 1, &leg->stats_ref);
  if (status == napi_ok) status = napi_create_reference(env, argv[15], 1, &leg->on_datagram_ref);
  if (status == napi_ok && rtp_type == napi_function) status = napi_create_reference(env, argv[16], 1, &leg->on_rtp_ref);
  if (status == napi_ok) status = napi_create_string_utf8(env, "parley native leg", NAPI_AUTO_LENGTH, &name);
  if (status == napi_ok) {
    status = napi_create_threadsafe_function(env, NULL, NULL, name, JS_QUEUE, 1, leg, tsfn_finalize, leg, call_js,
                                             &leg->tsfn);
  }
  if (status == napi_ok) status = napi_unref_threadsafe_function(env, leg->tsfn);
  if (status == napi_ok) status = napi_create_external(env, handle, leg_handle_finalize, NULL, &handle_value);
  if (status == napi_ok) {
    handle->leg = leg;
    leg->handle = handle;
    status = napi_type_tag_object(env, handle_value, &LEG_TAG);
  }
  int on = 1;
  if (status == napi_ok) setsockopt(leg->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
  if (status == napi_ok && plane_watch(leg->thread, leg) != 0) status = napi_generic_failure;
  if (status != napi_ok) {
    /* Unwind: the leg never ran. */
    srtp_context_free(&leg->rx);
    srtp_context_free(&leg->tx);
    if (leg->stats_ref) napi_delete_reference(env, leg->stats_ref);
    leg->closed = 1;
    if (leg->tsfn) {
      napi_release_threadsafe_function(leg->tsfn, napi_tsfn_abort);
    } else {
      if (leg->on_datagram_ref) napi_delete_reference(env, leg->on_datagram_ref);
      if (leg->on_rtp_ref) napi_delete_reference(env, leg->on_rtp_ref);
      if (handle && !leg->handle) free(handle);
      free_leg(leg);
    }
    return throw_type(env, "cannot add the leg (epoll or Node-API failure)");
  }
  leg->next_in_plane = plane->legs;
  if (plane->legs) plane->legs->prev_in_plane = leg;
  plane->legs = leg;
  return handle_value;
}

static napi_value leg_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "close needs a leg");
  leg_t *leg = leg_of(env, argv[0]);
  if (leg) close_leg(env, leg);
  return NULL;
}

/* setRemote(leg, address, port) */
static napi_value leg_set_remote(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "setRemote needs a leg, an address and a port");
  leg_t *leg = leg_of(env, argv[0]);
  if (!leg) return NULL;
  char address[128];
  int64_t port;
  struct sockaddr_storage remote;
  socklen_t length;
  if (!get_string(env, argv[1], address, sizeof(address)) || !get_int(env, argv[2], &port) ||
      !parse_address(leg->family, address, port, &remote, &length)) {
    return throw_type(env, "bad remote address or port");
  }
  pthread_mutex_lock(&leg->lock);
  leg->remote = remote;
  leg->remote_length = length;
  pthread_mutex_unlock(&leg->lock);
  return NULL;
}

/* setFlag(leg, which, value): 0 canSend, 1 forwardToJs, 2 audioLevelId (a number). */
static napi_value leg_set(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "set needs a leg, a setting and a value");
  leg_t *leg = leg_of(env, argv[0]);
  if (!leg) return NULL;
  int64_t which, number = 0;
  bool flag = false;
  if (!get_int(env, argv[1], &which)) return throw_type(env, "bad setting");
  if (which == 2 ? !get_int(env, argv[2], &number) || number < -1 || number > 255 : !get_bool(env, argv[2], &flag)) {
    return throw_type(env, "bad value");
  }
  pthread_mutex_lock(&leg->lock);
  if (which == 0) leg->can_send = flag;
  else if (which == 1) leg->forward_to_js = flag && leg->on_rtp_ref;
  else leg->audio_level_id = (int)number;
  pthread_mutex_unlock(&leg->lock);
  return NULL;
}

/* route(leg, slot, source | null) */
static napi_value leg_route_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "route needs a leg, a slot and a source");
  leg_t *leg = leg_of(env, argv[0]);
  if (!leg) return NULL;
  int64_t slot;
  if (!get_int(env, argv[1], &slot) || slot < 0 || slot >= leg->slot_count) {
    napi_throw_range_error(env, NULL, "the leg has no such slot");
    return NULL;
  }
  leg_t *source = NULL;
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[2], &type));
  if (type != napi_null && type != napi_undefined) {
    leg_handle_t *handle = get_tagged(env, argv[2], &LEG_TAG);
    if (!handle) return throw_type(env, "the source is not a native leg");
    if (handle->leg && handle->leg->plane != leg->plane) return throw_type(env, "the source is on another plane");
    source = handle->leg;
  }
  const char *error = leg_route(leg, (int)slot, source);
  if (error) napi_throw_error(env, NULL, error);
  return NULL;
}

/* sendFrom(leg, slot, sourceKey, ssrc, roc, seq, timestamp, marker, payload, arrivedAtMs) */
static napi_value leg_send_from_js(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10) return throw_type(env, "sendFrom needs 10 arguments");
  leg_t *leg = leg_of(env, argv[0]);
  if (!leg) return NULL;
  int64_t slot, key, ssrc, roc, seq, timestamp;
  bool marker;
  uint8_t *payload;
  size_t length;
  double arrived;
  if (!get_int(env, argv[1], &slot) || slot < 0 || slot >= leg->slot_count) {
    napi_throw_range_error(env, NULL, "the leg has no such slot");
    return NULL;
  }
  if (!get_int(env, argv[2], &key) || !get_int(env, argv[3], &ssrc) || !get_int(env, argv[4], &roc) ||
      !get_int(env, argv[5], &seq) || !get_int(env, argv[6], &timestamp) || !get_bool(env, argv[7], &marker) ||
      !get_bytes(env, argv[8], &payload, &length) || !get_double(env, argv[9], &arrived) || roc < 0 ||
      roc > 0xffffffffLL || seq < 0 || seq > 0xffff || length > RECV_BYTES - 12) {
    return throw_type(env, "bad packet");
  }
  inbound_t packet = {
      .payload = payload,
      .length = (int)length,
      .ssrc = (uint32_t)ssrc,
      .roc = (uint32_t)roc,
      .seq = (uint16_t)seq,
      .timestamp = (uint32_t)timestamp,
      .marker = marker,
      .arrived_at = arrived,
  };
  /* Sources that are not native legs are named apart from legs (whose ids have the top bit clear). */
  leg_send_from(leg, (int)slot, (1ULL << 63) | (uint64_t)key, &packet);
  return NULL;
}

/* ------------------------------------------------------------------ planes */

/* The environment is ending with the plane open: stop its threads (its legs stay as they are). */
static void environment_cleanup(void *data) {
  plane_t *plane = data;
  if (plane->closed) return;
  plane->closed = 1;
  plane_stop(plane);
}

static void close_plane(napi_env env, plane_t *plane) {
  if (plane->closed) return;
  while (plane->legs) close_leg(env, plane->legs);
  plane->closed = 1;
  plane_stop(plane);
  napi_remove_env_cleanup_hook(env, environment_cleanup, plane);
  if (plane->self_ref) napi_delete_reference(env, plane->self_ref);
  plane->self_ref = NULL;
}

static void plane_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  plane_t *plane = data;
  if (!plane->closed) {
    plane->closed = 1;
    plane_stop(plane);
  }
  free(plane);
  live_planes--;
}

/* createPlane(threads, ioUring): ioUring false makes the threads use plain system calls. */
static napi_value create_plane(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], handle;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t threads;
  if (argc < 1 || !get_int(env, argv[0], &threads) || threads < 1 || threads > MAX_THREADS) {
    return throw_type(env, "threads must be 1 to 256");
  }
  bool io_uring = true;
  if (argc >= 2 && napi_get_value_bool(env, argv[1], &io_uring) != napi_ok) {
    return throw_type(env, "ioUring must be a boolean");
  }
  plane_t *plane = calloc(1, sizeof(plane_t));
  if (!plane) return throw_type(env, "out of memory");
  live_planes++;
  const char *error = plane_start(plane, (int)threads, io_uring);
  if (error) {
    plane_stop(plane);
    free(plane);
    live_planes--;
    napi_throw_error(env, NULL, error);
    return NULL;
  }
  if (napi_create_external(env, plane, plane_finalize, NULL, &handle) != napi_ok ||
      napi_type_tag_object(env, handle, &PLANE_TAG) != napi_ok ||
      napi_create_reference(env, handle, 1, &plane->self_ref) != napi_ok) {
    return throw_last(env);
  }
  napi_add_env_cleanup_hook(env, environment_cleanup, plane);
  return handle;
}

static napi_value plane_close_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  plane_t *plane = argc ? get_tagged(env, argv[0], &PLANE_TAG) : NULL;
  if (!plane) return throw_type(env, "not a native plane");
  close_plane(env, plane);
  return NULL;
}

/* legCounts(plane): how many legs each thread serves. */
static napi_value plane_leg_counts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, count;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  plane_t *plane = argc ? get_tagged(env, argv[0], &PLANE_TAG) : NULL;
  if (!plane) return throw_type(env, "not a native plane");
  CHECK(napi_create_array_with_length(env, (size_t)plane->thread_count, &result));
  for (int i = 0; i < plane->thread_count; i++) {
    CHECK(napi_create_int32(env, plane->threads[i]->legs, &count));
    CHECK(napi_set_element(env, result, (uint32_t)i, count));
  }
  return result;
}

/* batching(plane): "io_uring", or why the threads make plain system calls. */
static napi_value plane_batching(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  plane_t *plane = argc ? get_tagged(env, argv[0], &PLANE_TAG) : NULL;
  if (!plane) return throw_type(env, "not a native plane");
  CHECK(napi_create_string_utf8(env, plane->batching ? plane->batching : "", NAPI_AUTO_LENGTH, &result));
  return result;
}

/* counts(): the planes and legs whose memory is held (for leak checks). */
static napi_value counts(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result, planes, legs;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_double(env, live_planes, &planes));
  CHECK(napi_create_double(env, live_legs, &legs));
  CHECK(napi_set_named_property(env, result, "planes", planes));
  CHECK(napi_set_named_property(env, result, "legs", legs));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  struct {
    const char *name;
    napi_callback callback;
  } functions[] = {
      {"createPlane", create_plane}, {"closePlane", plane_close_js}, {"legCounts", plane_leg_counts},
      {"addLeg", add_leg},           {"closeLeg", leg_close},        {"setRemote", leg_set_remote},
      {"set", leg_set},              {"route", leg_route_js},        {"sendFrom", leg_send_from_js},
      {"counts", counts},            {"batching", plane_batching},
  };
  for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].callback, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok) {
      return NULL;
    }
  }
  napi_value layout, value;
  napi_create_object(env, &layout);
  napi_create_int32(env, STAT_SLOT_BASE, &value);
  napi_set_named_property(env, layout, "SLOT_BASE", value);
  napi_create_int32(env, STAT_SLOT_STRIDE, &value);
  napi_set_named_property(env, layout, "SLOT_STRIDE", value);
  napi_create_int32(env, MAX_SLOTS, &value);
  napi_set_named_property(env, layout, "MAX_SLOTS", value);
  napi_create_int32(env, MAX_SSRCS, &value);
  napi_set_named_property(env, layout, "MAX_SSRCS", value);
  napi_set_named_property(env, exports, "layout", layout);
  return exports;
}

NAPI_MODULE(parley_data_plane, init)
