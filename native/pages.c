/*
 * Optional native addon: page compression without a JavaScript call per page.
 *
 * Built by node-gyp at install (binding.gyp, native/config.mjs) with what the machine has:
 *   - zlib streams (RFC 1950) with libdeflate, compiled from its sources in native/libdeflate
 *     (no system package needed);
 *   - lzo1x-1 with minilzo, compiled from the sources of the `lzo` npm package that vmcore
 *     already installs as an optional dependency (HAVE_MINILZO).
 * Both write the streams makedumpfile writes (zlib level 1, lzo1x_1_compress), so every kdump
 * reader (crash, libkdumpfile, makedumpfile, vmcore) reads them unchanged.
 * Node-API, context-aware: each worker thread has its own compressors and scratch memory.
 *
 *   codecs: string[]                         the codecs this build compresses ("zlib", "lzo")
 *   zlibImpl, lzoImpl: string                what compresses them ("libdeflate 1.23", "minilzo 2.09")
 *   zlibCompress(src, dst, dstOffset, dstLimit, level) -> bytes written, or 0 when the stream
 *       needs more than dstLimit bytes (the caller stores the page raw)
 *   lzoCompress(src, dst, dstOffset, dstLimit) -> bytes written, or 0 when more than dstLimit
 *   lzoDecompress(src, dst) -> bytes written, or a negative LZO_E_* code
 *       (lzo1x_decompress_safe: never writes outside dst)
 *   compressPages(codec, buf, count, pageSize, detectZero, level, kinds, sizes) -> data length
 *       A batch of `count` pages of `pageSize` bytes at the start of `buf`, classified and
 *       compressed in place: page i's stored bytes end up at or before offset i * pageSize.
 *       kinds[i]: 0 zero page (only with detectZero), 1 raw, 2 compressed; sizes[i] its stored
 *       bytes. codec "none" only classifies. The same contract as compressBatchInPlace in
 *       src/node/workers/page-codec.ts, which is the JavaScript path.
 *   compressFilePages(codec, fd, fileOffset, count, pageSize, detectZero, level, kinds, sizes, out)
 *       -> data length. The same, for `count` pages read from the open file `fd` at byte
 *       `fileOffset` (pread(2), 64 KiB at a time into this thread's own buffer, so each page is
 *       read and compressed while it is in this core's cache) into `out` (count * pageSize bytes
 *       at least). A worker thread reads its batch itself: the thread that plans the conversion
 *       copies no page. A read error or a file that ends early throws an Error whose message
 *       names the offset and errno ("compressFilePages: read at OFFSET: ...").
 *   pipeSize(fd, bytes) -> the pipe's new capacity, -errno when refused, 0 without
 *       F_SETPIPE_SZ (fcntl(2), pipe(7)): Node has no fcntl; `vmcore dump --qmp` grows QEMU's
 *       FIFO to 1 MiB so that fewer, larger reads and wake-ups move the guest's memory.
 * Errors are thrown as Error with a message naming the function and the bad argument.
 */
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#if defined(__linux__) && !defined(F_SETPIPE_SZ)
#define F_SETPIPE_SZ 1031 /* F_LINUX_SPECIFIC_BASE + 7, <linux/fcntl.h> */
#endif
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "libdeflate.h"
#ifdef HAVE_MINILZO
/* one translation unit: the lzo package's minilzo.c, found through include_dirs (binding.gyp) */
#include "minilzo.c"
#endif

#define MAX_LEVEL 12 /* libdeflate's highest */
#ifdef HAVE_MINILZO
static int lzo_ok; /* lzo_init() succeeded (it checks the compiler's type sizes) */
#endif
#define MAX_PAGE_SIZE (1u << 20)

typedef struct {
  struct libdeflate_compressor *deflate[MAX_LEVEL + 1];
#ifdef HAVE_MINILZO
  void *lzo_wrkmem;
#endif
  uint8_t *scratch; /* one compressed page at most: pageSize + lzo's worst-case growth */
  size_t scratch_len;
  uint8_t *rbuf; /* compressFilePages: READ_CHUNK bytes read at a time */
} state_t;

#define READ_CHUNK (64u << 10)

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  state_t *s = (state_t *)data;
  for (int i = 0; i <= MAX_LEVEL; i++)
    if (s->deflate[i]) libdeflate_free_compressor(s->deflate[i]);
#ifdef HAVE_MINILZO
  free(s->lzo_wrkmem);
#endif
  free(s->scratch);
  free(s->rbuf);
  free(s);
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value int64_value(napi_env env, int64_t v) {
  napi_value r = NULL;
  napi_create_int64(env, v, &r);
  return r;
}

static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type t;
  size_t n, off;
  void *d;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &t, &n, &d, &ab, &off) != napi_ok || t != want) return 0;
  *data = d;
  *len = n;
  return 1;
}

static state_t *get_state(napi_env env) {
  state_t *s = NULL;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok) return NULL;
  return s;
}

/* lzo1x-1's worst case for n input bytes (minilzo.h / LZO FAQ). */
static size_t lzo_bound(size_t n) { return n + n / 16 + 64 + 3; }

static uint8_t *scratch_for(state_t *s, size_t page_size) {
  size_t need = lzo_bound(page_size);
  if (s->scratch_len < need) {
    uint8_t *p = (uint8_t *)realloc(s->scratch, need);
    if (!p) return NULL;
    s->scratch = p;
    s->scratch_len = need;
  }
  return s->scratch;
}

/*
 * One zlib stream (RFC 1950) of src[0, n) at `level` into dst[0, limit): its length, 0 when it
 * needs more than limit bytes, (size_t)-1 when memory runs out. A stream every inflate reads, as
 * makedumpfile's compress2(level) writes (the bytes differ: libdeflate's own matcher).
 */
static size_t zlib_page(state_t *s, int level, const uint8_t *src, size_t n, uint8_t *dst, size_t limit) {
  if (!s->deflate[level]) s->deflate[level] = libdeflate_alloc_compressor(level);
  if (!s->deflate[level]) return (size_t)-1;
  return libdeflate_zlib_compress(s->deflate[level], src, n, dst, limit);
}

#ifdef HAVE_MINILZO
static void *lzo_mem(state_t *s) {
  if (!s->lzo_wrkmem) s->lzo_wrkmem = malloc(LZO1X_1_MEM_COMPRESS);
  return s->lzo_wrkmem;
}

/* lzo1x-1 of src into s->scratch; the length when it is below limit, else 0. */
static size_t lzo_page(state_t *s, const uint8_t *src, size_t n, size_t limit) {
  lzo_uint out = 0;
  if (lzo1x_1_compress(src, n, s->scratch, &out, lzo_mem(s)) != LZO_E_OK) return 0;
  return out < limit ? (size_t)out : 0;
}
#endif

static int is_zero(const uint8_t *p, size_t n) {
  /* n is a multiple of 64 (a page size); 64 bytes per step, unaligned loads through memcpy */
  for (size_t i = 0; i < n; i += 64) {
    uint64_t w[8];
    memcpy(w, p + i, 64);
    if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return 0;
  }
  return 1;
}

static int get_range(napi_env env, napi_value *argv, size_t dstlen, int64_t *off, int64_t *limit, const char *fn) {
  if (napi_get_value_int64(env, argv[0], off) != napi_ok || napi_get_value_int64(env, argv[1], limit) != napi_ok) {
    napi_throw_error(env, NULL, fn);
    return 0;
  }
  if (*off < 0 || *limit < 0 || (uint64_t)*off > dstlen || (uint64_t)*limit > dstlen - (size_t)*off) {
    napi_throw_range_error(env, NULL, fn);
    return 0;
  }
  return 1;
}

/*
 * The arguments of fn(src, dst, [dstOffset, dstLimit,] ...): at least `want` of them into argv,
 * src and dst as Uint8Arrays and, when off is not NULL, the output range dst[off, off + limit).
 * 0 after throwing an Error (RangeError for the range) that names fn.
 */
/* The first `want` arguments of fn into argv; 0 after throwing an Error that names fn. */
static int get_argv(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *fn) {
  char msg[96];
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= want) return 1;
  snprintf(msg, sizeof msg, "%s: %u arguments expected", fn, (unsigned)want);
  napi_throw_error(env, NULL, msg);
  return 0;
}

static int get_src_dst(napi_env env, napi_callback_info info, size_t want, napi_value *argv, uint8_t **src, size_t *srclen, uint8_t **dst, size_t *dstlen, int64_t *off, int64_t *limit, const char *fn) {
  char msg[96];
  if (!get_argv(env, info, want, argv, fn)) return 0;
  if (!get_typed(env, argv[0], napi_uint8_array, (void **)src, srclen) || !get_typed(env, argv[1], napi_uint8_array, (void **)dst, dstlen)) {
    snprintf(msg, sizeof msg, "%s: Uint8Array expected", fn);
    napi_throw_error(env, NULL, msg);
    return 0;
  }
  if (off) {
    snprintf(msg, sizeof msg, "%s: output range out of bounds", fn);
    return get_range(env, argv + 2, *dstlen, off, limit, msg);
  }
  return 1;
}

/* pipeSize(fd, bytes): F_SETPIPE_SZ (Linux fcntl(2)); the pipe's new capacity in bytes, or
 * -errno (EPERM above /proc/sys/fs/pipe-max-size for an unprivileged process). 0 where the
 * system has no F_SETPIPE_SZ. */
static napi_value pipe_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, bytes;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &bytes) != napi_ok || fd < 0 || bytes <= 0)
    return throw_msg(env, "pipeSize: expected (fd, bytes)");
#ifdef F_SETPIPE_SZ
  int r = fcntl(fd, F_SETPIPE_SZ, bytes);
  return int64_value(env, r < 0 ? -(int64_t)errno : (int64_t)r);
#else
  return int64_value(env, 0);
#endif
}

static napi_value zlib_compress(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *src, *dst;
  size_t srclen, dstlen;
  int64_t off, limit;
  int32_t level;
  if (!get_src_dst(env, info, 5, argv, &src, &srclen, &dst, &dstlen, &off, &limit, "zlibCompress")) return NULL;
  if (napi_get_value_int32(env, argv[4], &level) != napi_ok || level < 0 || level > MAX_LEVEL) return throw_msg(env, "zlibCompress: level out of range");
  state_t *s = get_state(env);
  size_t n = s ? zlib_page(s, level, src, srclen, dst + off, (size_t)limit) : (size_t)-1;
  if (n == (size_t)-1) return throw_msg(env, "zlibCompress: out of memory");
  return int64_value(env, (int64_t)n);
}

#ifdef HAVE_MINILZO
static napi_value lzo_compress(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *src, *dst;
  size_t srclen, dstlen;
  int64_t off, limit;
  if (!get_src_dst(env, info, 4, argv, &src, &srclen, &dst, &dstlen, &off, &limit, "lzoCompress")) return NULL;
  if (srclen > MAX_PAGE_SIZE) return throw_msg(env, "lzoCompress: input larger than 1 MiB");
  state_t *s = get_state(env);
  if (!s || !scratch_for(s, srclen) || !lzo_mem(s)) return throw_msg(env, "lzoCompress: out of memory");
  size_t n = lzo_page(s, src, srclen, (size_t)limit + 1);
  if (n) memcpy(dst + off, s->scratch, n);
  return int64_value(env, (int64_t)n);
}

static napi_value lzo_decompress(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *src, *dst;
  size_t srclen, dstlen;
  if (!get_src_dst(env, info, 2, argv, &src, &srclen, &dst, &dstlen, NULL, NULL, "lzoDecompress")) return NULL;
  lzo_uint out = dstlen;
  int e = lzo1x_decompress_safe(src, srclen, dst, &out, NULL);
  return int64_value(env, e == LZO_E_OK ? (int64_t)out : (int64_t)(e < 0 ? e : -1));
}
#endif

/*
 * The codec of a call: 0 "none" (classify only), 1 zlib, 2 lzo; -1 after throwing. `fn` names
 * the function in the messages.
 */
static int codec_of(napi_env env, napi_value name, state_t *s, int32_t level, const char *fn) {
  char codec[8] = {0};
  char msg[96];
  size_t clen = 0;
  if (napi_get_value_string_utf8(env, name, codec, sizeof codec, &clen) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: codec name expected", fn);
    return throw_msg(env, msg), -1;
  }
  if (strcmp(codec, "zlib") == 0) {
    if (level < 0 || level > MAX_LEVEL) {
      snprintf(msg, sizeof msg, "%s: zlib level out of range", fn);
      return throw_msg(env, msg), -1;
    }
    return 1;
  }
#ifdef HAVE_MINILZO
  if (strcmp(codec, "lzo") == 0 && lzo_ok) {
    if (!lzo_mem(s)) {
      snprintf(msg, sizeof msg, "%s: out of memory", fn);
      return throw_msg(env, msg), -1;
    }
    return 2;
  }
#endif
  (void)s;
  (void)level;
  if (strcmp(codec, "none") == 0) return 0;
  snprintf(msg, sizeof msg, "%s: codec not in this build", fn);
  return throw_msg(env, msg), -1;
}

/*
 * Page i of `pages` (n pages of ps bytes) classified and stored at dst + *out: kinds[i], sizes[i]
 * and *out advanced. dst + *out may be the page itself or before it (in place), or another
 * buffer. 0 when memory runs out.
 */
static int store_pages(state_t *s, int which, int32_t level, bool zero, const uint8_t *pages, uint32_t n, uint32_t ps, uint8_t *dst, size_t *out, uint8_t *kinds, uint32_t *sizes) {
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *page = pages + (size_t)i * ps;
    if (zero && is_zero(page, ps)) {
      kinds[i] = 0;
      sizes[i] = 0;
      continue;
    }
    size_t c = 0;
    if (which == 1 && (c = zlib_page(s, level, page, ps, s->scratch, ps - 1)) == (size_t)-1) return 0;
#ifdef HAVE_MINILZO
    if (which == 2) c = lzo_page(s, page, ps, ps);
#endif
    (void)level;
    if (c > 0 && c < ps) {
      memcpy(dst + *out, s->scratch, c); /* in place: *out <= the page's offset, read whole already */
      kinds[i] = 2;
      sizes[i] = (uint32_t)c;
      *out += c;
    } else {
      if (dst + *out != page) memmove(dst + *out, page, ps);
      kinds[i] = 1;
      sizes[i] = ps;
      *out += ps;
    }
  }
  return 1;
}

/* The arguments count, pageSize, detectZero, level, kinds, sizes that both batch calls take. */
typedef struct {
  uint32_t count, ps;
  bool zero;
  int32_t level;
  uint8_t *kinds;
  uint32_t *sizes;
} page_args_t;

/*
 * argv[0..5] as page_args_t, checked: pageSize a power of two from 64 to max_ps, kinds and sizes
 * holding count entries. 0 after throwing an Error (RangeError for the sizes) that names fn.
 */
static int get_page_args(napi_env env, napi_value *argv, uint32_t max_ps, const char *fn, page_args_t *a) {
  char msg[128];
  size_t nkinds, nsizes;
  if (napi_get_value_uint32(env, argv[0], &a->count) != napi_ok || napi_get_value_uint32(env, argv[1], &a->ps) != napi_ok ||
      napi_get_value_bool(env, argv[2], &a->zero) != napi_ok || napi_get_value_int32(env, argv[3], &a->level) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: count, pageSize, detectZero, level expected", fn);
    return throw_msg(env, msg), 0;
  }
  if (!get_typed(env, argv[4], napi_uint8_array, (void **)&a->kinds, &nkinds) || !get_typed(env, argv[5], napi_uint32_array, (void **)&a->sizes, &nsizes)) {
    snprintf(msg, sizeof msg, "%s: kinds (Uint8Array) and sizes (Uint32Array) expected", fn);
    return throw_msg(env, msg), 0;
  }
  if (a->ps < 64 || a->ps > max_ps || (a->ps & (a->ps - 1))) {
    snprintf(msg, sizeof msg, "%s: pageSize must be a power of two from 64 to %u KiB", fn, max_ps >> 10);
    return throw_msg(env, msg), 0;
  }
  if (nkinds < a->count || nsizes < a->count) {
    snprintf(msg, sizeof msg, "%s: count pages do not fit kinds or sizes", fn);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

static napi_value compress_pages(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!get_argv(env, info, 8, argv, "compressPages")) return NULL;
  uint8_t *buf;
  size_t buflen;
  page_args_t a;
  if (!get_typed(env, argv[1], napi_uint8_array, (void **)&buf, &buflen)) return throw_msg(env, "compressPages: buf must be a Uint8Array");
  if (!get_page_args(env, argv + 2, MAX_PAGE_SIZE, "compressPages", &a)) return NULL;
  if ((uint64_t)a.count * a.ps > buflen) return napi_throw_range_error(env, NULL, "compressPages: count pages do not fit buf"), NULL;
  state_t *s = get_state(env);
  if (!s || !scratch_for(s, a.ps)) return throw_msg(env, "compressPages: out of memory");
  int which = codec_of(env, argv[0], s, a.level, "compressPages");
  if (which < 0) return NULL;
  size_t out = 0;
  if (!store_pages(s, which, a.level, a.zero, buf, a.count, a.ps, buf, &out, a.kinds, a.sizes)) return throw_msg(env, "compressPages: out of memory");
  return int64_value(env, (int64_t)out);
}

static napi_value compress_file_pages(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_argv(env, info, 10, argv, "compressFilePages")) return NULL;
  uint8_t *out_buf;
  size_t outlen;
  int32_t fd;
  int64_t off;
  page_args_t a;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || napi_get_value_int64(env, argv[2], &off) != napi_ok || fd < 0 || off < 0)
    return throw_msg(env, "compressFilePages: fd and fileOffset must be non-negative integers");
  if (!get_page_args(env, argv + 3, READ_CHUNK, "compressFilePages", &a)) return NULL;
  if (!get_typed(env, argv[9], napi_uint8_array, (void **)&out_buf, &outlen)) return throw_msg(env, "compressFilePages: out must be a Uint8Array");
  if ((uint64_t)a.count * a.ps > outlen) return napi_throw_range_error(env, NULL, "compressFilePages: count pages do not fit out"), NULL;
  state_t *s = get_state(env);
  if (!s || !scratch_for(s, a.ps) || (!s->rbuf && !(s->rbuf = (uint8_t *)malloc(READ_CHUNK)))) return throw_msg(env, "compressFilePages: out of memory");
  int which = codec_of(env, argv[0], s, a.level, "compressFilePages");
  if (which < 0) return NULL;
  const uint32_t count = a.count, ps = a.ps;
  const uint32_t per = READ_CHUNK / ps;
  size_t out = 0;
  for (uint32_t i = 0; i < count; i += per) {
    uint32_t n = count - i < per ? count - i : per;
    size_t want = (size_t)n * ps, got = 0;
    int64_t at = off + (int64_t)i * ps;
    while (got < want) {
      ssize_t r = pread(fd, s->rbuf + got, want - got, (off_t)(at + (int64_t)got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "compressFilePages: read at %lld: %s", (long long)(at + (int64_t)got), r < 0 ? strerror(errno) : "end of file");
        return throw_msg(env, msg);
      }
      got += (size_t)r;
    }
    if (!store_pages(s, which, a.level, a.zero, s->rbuf, n, ps, out_buf, &out, a.kinds + i, a.sizes + i)) return throw_msg(env, "compressFilePages: out of memory");
  }
  return int64_value(env, (int64_t)out);
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

/* codecs[nc++] = name, exports[version_key] = version */
static void add_codec(napi_env env, napi_value exports, napi_value codecs, uint32_t *nc, const char *name, const char *version_key, const char *version) {
  napi_value str;
  napi_create_string_utf8(env, version, NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, exports, version_key, str);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &str);
  napi_set_element(env, codecs, (*nc)++, str);
}

NAPI_MODULE_INIT() {
  state_t *s = (state_t *)calloc(1, sizeof(state_t));
  if (!s) return NULL;
  napi_set_instance_data(env, s, free_state, NULL);
  napi_value codecs;
  uint32_t nc = 0;
  napi_create_array(env, &codecs);
  export_fn(env, exports, "compressPages", compress_pages);
  export_fn(env, exports, "compressFilePages", compress_file_pages);
  export_fn(env, exports, "zlibCompress", zlib_compress);
  export_fn(env, exports, "pipeSize", pipe_size);
  add_codec(env, exports, codecs, &nc, "zlib", "zlibImpl", "libdeflate " LIBDEFLATE_VERSION_STRING);
#ifdef HAVE_MINILZO
  lzo_ok = lzo_init() == LZO_E_OK;
  if (lzo_ok) {
    export_fn(env, exports, "lzoCompress", lzo_compress);
    export_fn(env, exports, "lzoDecompress", lzo_decompress);
    add_codec(env, exports, codecs, &nc, "lzo", "lzoImpl", "minilzo " LZO_VERSION_STRING);
  }
#endif
  napi_set_named_property(env, exports, "codecs", codecs);
  return exports;
}
