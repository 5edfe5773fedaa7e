/*
 * Optional native addon: per-page zlib-format compression with libdeflate, which is several
 * times faster than zlib at level 1 and still writes standard zlib streams (RFC 1950), so every
 * kdump reader (crash, libkdumpfile, makedumpfile, vmcore) inflates them unchanged.
 * Node-API, context-aware: each worker thread gets its own compressors.
 *
 *   zlibCompress(src: Uint8Array, dst: Uint8Array, dstOffset: number, dstLimit: number,
 *                level: number) -> bytes written, or 0 when the result needs more than
 *                dstLimit bytes (the caller then stores the page raw).
 */
#include <node_api.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVEL 12

typedef struct {
  struct libdeflate_compressor *c[MAX_LEVEL + 1];
} state_t;

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  state_t *s = (state_t *)data;
  for (int i = 0; i <= MAX_LEVEL; i++)
    if (s->c[i]) libdeflate_free_compressor(s->c[i]);
  free(s);
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int get_u8(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type t;
  size_t n, off;
  void *d;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &t, &n, &d, &ab, &off) != napi_ok) return 0;
  if (t != napi_uint8_array) return 0;
  *data = (uint8_t *)d;
  *len = n;
  return 1;
}

static napi_value zlib_compress(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_msg(env, "zlibCompress: 5 arguments expected");
  uint8_t *src, *dst;
  size_t srclen, dstlen;
  if (!get_u8(env, argv[0], &src, &srclen) || !get_u8(env, argv[1], &dst, &dstlen)) return throw_msg(env, "zlibCompress: Uint8Array expected");
  int64_t off, limit;
  int32_t level;
  if (napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &limit) != napi_ok ||
      napi_get_value_int32(env, argv[4], &level) != napi_ok)
    return throw_msg(env, "zlibCompress: numbers expected");
  if (off < 0 || limit < 0 || (uint64_t)off > dstlen || (uint64_t)limit > dstlen - (size_t)off) return throw_msg(env, "zlibCompress: output range out of bounds");
  if (level < 0 || level > MAX_LEVEL) return throw_msg(env, "zlibCompress: level 0..12");
  state_t *s = NULL;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok || !s) return throw_msg(env, "zlibCompress: no state");
  if (!s->c[level]) {
    s->c[level] = libdeflate_alloc_compressor(level);
    if (!s->c[level]) return throw_msg(env, "zlibCompress: out of memory");
  }
  size_t n = libdeflate_zlib_compress(s->c[level], src, srclen, dst + off, (size_t)limit);
  napi_value r;
  napi_create_int64(env, (int64_t)n, &r);
  return r;
}

NAPI_MODULE_INIT() {
  state_t *s = (state_t *)calloc(1, sizeof(state_t));
  if (!s) return NULL;
  napi_set_instance_data(env, s, free_state, NULL);
  napi_value fn;
  napi_create_function(env, "zlibCompress", NAPI_AUTO_LENGTH, zlib_compress, NULL, &fn);
  napi_set_named_property(env, exports, "zlibCompress", fn);
  napi_value ver;
  napi_create_string_utf8(env, LIBDEFLATE_VERSION_STRING, NAPI_AUTO_LENGTH, &ver);
  napi_set_named_property(env, exports, "libdeflateVersion", ver);
  return exports;
}
