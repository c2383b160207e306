/*
 * strata_native: the few file-system calls Node's fs module cannot make.
 *
 *   punchHole(fd, offset, length) -> boolean
 *       fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). true: the range
 *       now reads zeros and its blocks went back to the file system. false:
 *       the file system (or platform) cannot punch holes; nothing changed.
 *   seekData(fd, offset) -> number      lseek(SEEK_DATA); -1 when no data
 *   seekHole(fd, offset) -> number      lseek(SEEK_HOLE); -1 past the end
 *   lockRange(fd, offset, length, exclusive) -> boolean
 *       fcntl(F_OFD_SETLK): an open-file-description lock, write (exclusive)
 *       or read (shared). true: taken; false: another open file description
 *       holds a conflicting lock. Released when the fd is closed. OFD locks
 *       belong to the open file, not the process, so two opens in one process
 *       conflict like two processes do, and they hold across PID namespaces
 *       (the kernel decides; no pid is compared).
 *   rangeLocked(fd, offset, length) -> boolean
 *       fcntl(F_OFD_GETLK) for a write lock: true when any other open file
 *       description holds a lock overlapping the range.
 *   interruptArm() -> boolean
 *       Catches SIGINT until interruptDisarm(): the first one only sets a flag
 *       that interrupted() returns, so synchronous work can stop at a safe
 *       point (Node runs JS signal handlers only between turns of its event
 *       loop, never during a synchronous loop). A second SIGINT writes one
 *       line to stderr and exits the process at once with status 130.
 *       false where the platform has no sigaction.
 *   interruptDisarm()                   puts back the SIGINT handling of before
 *   interrupted() -> boolean            whether SIGINT came since interruptArm()
 *   startWriteback(fd, offset, length) -> boolean
 *       sync_file_range(SYNC_FILE_RANGE_WRITE): starts writing the range's
 *       dirty pages to the device and returns without waiting. It makes
 *       nothing durable and, unlike an fsync, consumes no write error: the
 *       fdatasync that later makes the range durable still reports it. false
 *       where the platform has no sync_file_range.
 *   writeAt(fd, buffers, offsets) -> undefined
 *       pwrite of each buffer at its offset, in order, resuming short writes:
 *       one call for the scattered 4 KiB slots of a flush (a random-write
 *       workload reuses free slots all over the store), where fs.writeSync
 *       cost a JS-to-C round trip per slot.
 *   compressBlocks(codec, level, src, count, dst, sizes, limit) -> undefined
 *       Compresses `count` 4 KiB blocks of `src` one by one (zstd at `level`,
 *       or lz4): block i's output goes to dst[i*4096...] and its length to
 *       sizes[i], or 0 when it would not fit in `limit` bytes (stored as it
 *       is). Splits the blocks over up to 4 threads (one per core): an import
 *       compresses while the other core reads and hashes. codec 1 = zstd,
 *       2 = lz4, 3 = lz4 in high-compression mode (decoded as 2); each exists only when built against the system library
 *       (features.zstd, features.lz4).
 *   compressBlocksAsync(codec, level, src, count, dst, sizes, limit, callback) -> undefined
 *       The same on a libuv worker: callback(null) once done, or callback(err).
 *       The only call that is not synchronous (push compresses while it reads
 *       and uploads); src, dst and sizes must not be touched until then.
 *   decompressBlock(codec, src, srcOffset, srcLength, dst, dstOffset) -> number
 *       One fragment back to its bytes; returns their count (4096 for a
 *       whole block), throws on a corrupt fragment.
 *   readFragment(fd, offset, length, codec, dst, dstOffset) -> number
 *       pread of one fragment (length bytes at offset) and its decoding into
 *       dst, in one call: a random read of a compressed block costs one
 *       crossing into C instead of a read, a buffer and a second call.
 *       Returns the bytes decoded; throws errno errors like fs.readSync
 *       and E_CORRUPT for a fragment that does not decode or a short file.
 *   verifyBlocks(buf, at, count, expected, expAt) -> number
 *       XXH64 (seed 0, cut to its low 53 bits, as src/store/hash.ts) of each
 *       of `count` 4 KiB blocks of buf from byte `at`, compared with
 *       expected[expAt + i] (a Float64Array). Answers the index of the first
 *       block that differs, or -1 when all match: a read is verified against
 *       the hash recorded for its slot without a JS loop over its blocks.
 *   readBlocks(fd, offset, count, buf, at, expected, expAt) -> number
 *       pread of `count` 4 KiB blocks at `offset` into buf[at...] (resuming
 *       short reads), then verifyBlocks on them, in one call: the read path
 *       of blocks in their own slot. Throws errno errors like fs.readSync,
 *       and E_SHORT when the file ends first.
 *   tuneMalloc() -> boolean
 *       mallopt(M_MMAP_THRESHOLD, 4 MiB) and mallopt(M_ARENA_MAX, 2) (glibc).
 *       glibc's default threshold starts at 128 KiB and rises (up to 32 MiB)
 *       after each large free, so a long-running server's memory follows its
 *       largest buffers. A fixed 4 MiB keeps the 1 MiB read replies and dirty
 *       arenas of a server on the heap, where they are reused without fresh
 *       page faults (a 128 KiB threshold made every 1 MiB reply a new mmap and
 *       cut sequential reads to 0.4x), while anything larger is an mmap that
 *       goes back to the kernel when freed. false where there is no mallopt.
 *   features -> { punchHole, seekData, ofdLock, interrupt, writeback: boolean }  compiled-in support
 *
 * Offsets and lengths travel as doubles and must be integers in
 * [0, 2^53 - 1]. Any other failure throws an Error shaped like Node's fs
 * errors: `code` is the errno name ("EBADF"), `errno` the negated errno
 * number, `syscall` the call that failed.
 *
 * Every call but compressBlocksAsync is synchronous on the calling thread, like
 * fs.*Sync: the callers (slot reclamation, sparse import) are synchronous by
 * design.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <node_api.h>

#if defined(__linux__)
#include <linux/falloc.h>
#endif

#if defined(__linux__) && defined(FALLOC_FL_PUNCH_HOLE) && defined(FALLOC_FL_KEEP_SIZE)
#define STRATA_HAVE_PUNCH 1
#else
#define STRATA_HAVE_PUNCH 0
#endif

#if defined(SEEK_DATA) && defined(SEEK_HOLE)
#define STRATA_HAVE_SEEK_DATA 1
#else
#define STRATA_HAVE_SEEK_DATA 0
#endif

#if defined(__linux__) && defined(F_OFD_SETLK) && defined(F_OFD_GETLK)
#define STRATA_HAVE_OFD_LOCK 1
#else
#define STRATA_HAVE_OFD_LOCK 0
#endif

#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
#define STRATA_HAVE_WRITEBACK 1
#else
#define STRATA_HAVE_WRITEBACK 0
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#define STRATA_HAVE_MALLOPT 1
#else
#define STRATA_HAVE_MALLOPT 0
#endif

#if defined(SA_RESTART)
#define STRATA_HAVE_INTERRUPT 1
#else
#define STRATA_HAVE_INTERRUPT 0
#endif

#define MAX_SAFE_INTEGER 9007199254740991.0

#define NAPI_CALL(env, call)                                                  \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      const napi_extended_error_info *info_ = NULL;                           \
      napi_get_last_error_info((env), &info_);                                \
      bool pending_ = false;                                                  \
      napi_is_exception_pending((env), &pending_);                            \
      if (!pending_)                                                          \
        napi_throw_error((env), "ERR_NAPI",                                   \
                         info_ && info_->error_message ? info_->error_message \
                                                       : "N-API call failed");\
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static const char *errno_name(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(ENXIO) E(EBADF) E(EAGAIN) E(ENOMEM)
    E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EISDIR)
    E(EINVAL) E(ENFILE) E(EMFILE) E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE)
    E(EROFS) E(EPIPE) E(ERANGE) E(ENOSYS) E(EOVERFLOW) E(ENOTSUP)
#if defined(EOPNOTSUPP) && EOPNOTSUPP != ENOTSUP
    E(EOPNOTSUPP)
#endif
#ifdef EDQUOT
    E(EDQUOT)
#endif
#ifdef ESTALE
    E(ESTALE)
#endif
#undef E
    default: return NULL;
  }
}

/* Throws `Error("<syscall>: <CODE>: <strerror>")` with code/errno/syscall set. */
static void throw_errno(napi_env env, int e, const char *syscall) {
  char code_buf[32];
  const char *code = errno_name(e);
  if (code == NULL) {
    snprintf(code_buf, sizeof code_buf, "ERRNO_%d", e);
    code = code_buf;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s: %s", syscall, code, strerror(e));

  napi_value js_code, js_msg, err, js_errno, js_syscall;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) != napi_ok ||
      napi_create_error(env, js_code, js_msg, &err) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  if (napi_create_int32(env, -e, &js_errno) == napi_ok)
    napi_set_named_property(env, err, "errno", js_errno);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall) == napi_ok)
    napi_set_named_property(env, err, "syscall", js_syscall);
  napi_throw(env, err);
}

/* Reads a file descriptor. Returns false after throwing, like get_off. */
static bool get_fd(napi_env env, napi_value v, int *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a number");
    return false;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > 2147483647.0 ||
      d != (double)(int)d) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd must be an integer in [0, 2^31 - 1]");
    return false;
  }
  *out = (int)d;
  return true;
}

/* Reads a byte offset or length: an integer double in [0, 2^53 - 1]. */
static bool get_off(napi_env env, napi_value v, const char *what, off_t *out) {
  char msg[96];
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > MAX_SAFE_INTEGER ||
      d != (double)(long long)d) {
    snprintf(msg, sizeof msg, "%s must be an integer in [0, 2^53 - 1]", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = (off_t)(long long)d;
  return true;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return false;
  }
  return true;
}

static napi_value punch_hole(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  int fd;
  off_t offset, length;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_off(env, argv[1], "offset", &offset) || !get_off(env, argv[2], "length", &length))
    return NULL;
  if ((double)offset + (double)length > MAX_SAFE_INTEGER) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "offset + length must not exceed 2^53 - 1");
    return NULL;
  }
  bool punched = true; /* an empty range is trivially reclaimed */
#if STRATA_HAVE_PUNCH
  if (length > 0) {
    int r;
    do {
      r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
      int e = errno;
      if (e == EOPNOTSUPP || e == ENOTSUP || e == ENOSYS) {
        punched = false;
      } else {
        throw_errno(env, e, "fallocate");
        return NULL;
      }
    }
  }
#else
  punched = length == 0;
#endif
  NAPI_CALL(env, napi_get_boolean(env, punched, &result));
  return result;
}

static napi_value start_writeback(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  int fd;
  off_t offset, length;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_off(env, argv[1], "offset", &offset) || !get_off(env, argv[2], "length", &length))
    return NULL;
  bool started = false;
#if STRATA_HAVE_WRITEBACK
  int r;
  do {
    r = sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    int e = errno;
    if (e != ENOSYS && e != EOPNOTSUPP && e != ESPIPE) {
      throw_errno(env, e, "sync_file_range");
      return NULL;
    }
  } else {
    started = true;
  }
#endif
  NAPI_CALL(env, napi_get_boolean(env, started, &result));
  return result;
}

static napi_value write_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  uint32_t n, n2;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  NAPI_CALL(env, napi_get_array_length(env, argv[1], &n));
  NAPI_CALL(env, napi_get_array_length(env, argv[2], &n2));
  if (n != n2) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "buffers and offsets differ in length");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value b, o;
    NAPI_CALL(env, napi_get_element(env, argv[1], i, &b));
    NAPI_CALL(env, napi_get_element(env, argv[2], i, &o));
    void *data;
    size_t len;
    bool is_typed;
    NAPI_CALL(env, napi_is_typedarray(env, b, &is_typed));
    if (!is_typed) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "buffers must be Uint8Arrays");
      return NULL;
    }
    napi_typedarray_type t;
    napi_value ab;
    size_t off_in_ab;
    NAPI_CALL(env, napi_get_typedarray_info(env, b, &t, &len, &data, &ab, &off_in_ab));
    if (t != napi_uint8_array) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "buffers must be Uint8Arrays");
      return NULL;
    }
    off_t at;
    if (!get_off(env, o, "offset", &at)) return NULL;
    size_t done = 0;
    while (done < len) {
      ssize_t r = pwrite(fd, (char *)data + done, len - done, at + (off_t)done);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_errno(env, errno, "pwrite");
        return NULL;
      }
      done += (size_t)r;
    }
  }
  return NULL;
}

/* ---- block codecs --------------------------------------------------------- */

#define CODEC_ZSTD 1
#define CODEC_LZ4 2
/* Only at compression: lz4's high-compression mode writes the lz4 block format, stored as CODEC_LZ4. */
#define CODEC_LZ4HC 3
#define CODEC_BLOCK 4096

#ifdef STRATA_HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef STRATA_HAVE_LZ4
#include <lz4.h>
#include <lz4hc.h>
#endif
#include <pthread.h>
#include <unistd.h>

struct compress_job {
  int codec, level;
  const uint8_t *src;
  uint8_t *dst;
  int32_t *sizes;
  size_t first, end, limit;
};

static void *compress_range(void *arg) {
  struct compress_job *j = arg;
#ifdef STRATA_HAVE_ZSTD
  ZSTD_CCtx *cctx = j->codec == CODEC_ZSTD ? ZSTD_createCCtx() : NULL;
#endif
  for (size_t i = j->first; i < j->end; i++) {
    const uint8_t *in = j->src + i * CODEC_BLOCK;
    uint8_t *out = j->dst + i * CODEC_BLOCK;
    int32_t n = 0;
#ifdef STRATA_HAVE_ZSTD
    if (j->codec == CODEC_ZSTD && cctx) {
      size_t r = ZSTD_compressCCtx(cctx, out, j->limit, in, CODEC_BLOCK, j->level);
      n = ZSTD_isError(r) ? 0 : (int32_t)r;
    }
#endif
#ifdef STRATA_HAVE_LZ4
    if (j->codec == CODEC_LZ4) n = LZ4_compress_fast((const char *)in, (char *)out, CODEC_BLOCK, (int)j->limit, j->level > 0 ? j->level : 1);
    if (j->codec == CODEC_LZ4HC) n = LZ4_compress_HC((const char *)in, (char *)out, CODEC_BLOCK, (int)j->limit, j->level);
#endif
    j->sizes[i] = n;
  }
#ifdef STRATA_HAVE_ZSTD
  if (cctx) ZSTD_freeCCtx(cctx);
#endif
  return NULL;
}

static bool codec_built(int codec) {
#ifdef STRATA_HAVE_ZSTD
  if (codec == CODEC_ZSTD) return true;
#endif
#ifdef STRATA_HAVE_LZ4
  if (codec == CODEC_LZ4 || codec == CODEC_LZ4HC) return true;
#endif
  return false;
}

static bool require_codec(napi_env env, int codec) {
  if (codec_built(codec)) return true;
  napi_throw_error(env, "ENOTSUP", "codec not built into the addon");
  return false;
}

static bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_typed;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Uint8Array");
    return false;
  }
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  void *p;
  if (napi_get_typedarray_info(env, v, &t, len, &p, &ab, &off) != napi_ok) return false;
  if (t != napi_uint8_array && t != napi_int32_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Uint8Array or Int32Array");
    return false;
  }
  if (t == napi_int32_array) *len *= 4;
  *data = p;
  return true;
}

/* Compresses count blocks split over up to 4 threads (one per core), the calling thread doing the first share. */
static void compress_all(int codec, int level, const uint8_t *src, uint8_t *dst, int32_t *sizes, size_t count, size_t limit) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  size_t threads = cores < 1 ? 1 : cores > 4 ? 4 : (size_t)cores;
  if (count < 64) threads = 1; // a thread costs more than a few blocks
  struct compress_job jobs[4];
  pthread_t tids[4];
  bool started[4] = {false, false, false, false};
  size_t per = (count + threads - 1) / threads;
  for (size_t t = 0; t < threads; t++) {
    size_t first = t * per, end = first + per > count ? count : first + per;
    jobs[t] = (struct compress_job){codec, level, src, dst, sizes, first, end, limit};
    if (t > 0 && first < end) started[t] = pthread_create(&tids[t], NULL, compress_range, &jobs[t]) == 0;
  }
  compress_range(&jobs[0]);
  for (size_t t = 1; t < threads; t++) {
    if (started[t]) pthread_join(tids[t], NULL);
    else if (jobs[t].first < jobs[t].end) compress_range(&jobs[t]); // no thread: do it here
  }
}

/* compressBlocks' arguments, argv[0..6]: parsed and checked, or false with an exception thrown. */
struct compress_args {
  int32_t codec, level;
  uint32_t count, limit;
  uint8_t *src, *dst;
  int32_t *sizes;
};

static bool compress_args(napi_env env, napi_value *argv, struct compress_args *a) {
  uint8_t *sizes;
  size_t src_len, dst_len, sizes_len;
  if (napi_get_value_int32(env, argv[0], &a->codec) != napi_ok || napi_get_value_int32(env, argv[1], &a->level) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &a->count) != napi_ok || napi_get_value_uint32(env, argv[6], &a->limit) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "codec, level, count and limit must be numbers");
    return false;
  }
  if (!get_bytes(env, argv[2], &a->src, &src_len) || !get_bytes(env, argv[4], &a->dst, &dst_len) || !get_bytes(env, argv[5], &sizes, &sizes_len)) return false;
  a->sizes = (int32_t *)sizes;
  if (!require_codec(env, a->codec)) return false;
  if (src_len < (size_t)a->count * CODEC_BLOCK || dst_len < (size_t)a->count * CODEC_BLOCK || sizes_len < (size_t)a->count * 4 || a->limit > CODEC_BLOCK) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "buffers too small for count blocks");
    return false;
  }
  return true;
}

static napi_value compress_blocks(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  struct compress_args a;
  if (!get_args(env, info, 7, argv) || !compress_args(env, argv, &a)) return NULL;
  compress_all(a.codec, a.level, a.src, a.dst, a.sizes, a.count, a.limit);
  return NULL;
}

/*
 * compressBlocksAsync: compressBlocks on a libuv worker (and its threads), the
 * callback called with null (or an Error) once done. The caller must leave the
 * three buffers alone until then; they are held by references meanwhile. For
 * push: a whole batch per call (an async work item costs 10-30 µs here), so
 * the event loop hashes the next batch and keeps uploads moving meanwhile.
 */
struct compress_work {
  napi_async_work work;
  napi_ref refs[3], callback;
  int codec, level;
  const uint8_t *src;
  uint8_t *dst;
  int32_t *sizes;
  size_t count, limit;
};

static void compress_execute(napi_env env, void *data) {
  struct compress_work *w = data;
  compress_all(w->codec, w->level, w->src, w->dst, w->sizes, w->count, w->limit);
}

static void compress_complete(napi_env env, napi_status status, void *data) {
  struct compress_work *w = data;
  napi_value cb, global, arg;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok) {
    if (status == napi_ok) napi_get_null(env, &arg);
    else {
      napi_value msg;
      napi_create_string_utf8(env, "compression was cancelled", NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, NULL, msg, &arg);
    }
    napi_call_function(env, global, cb, 1, &arg, NULL);
  }
  for (int i = 0; i < 3; i++) napi_delete_reference(env, w->refs[i]);
  napi_delete_reference(env, w->callback);
  napi_delete_async_work(env, w->work);
  free(w);
}

static napi_value compress_blocks_async(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  struct compress_args a;
  napi_valuetype cb_type;
  if (!get_args(env, info, 8, argv) || !compress_args(env, argv, &a)) return NULL;
  NAPI_CALL(env, napi_typeof(env, argv[7], &cb_type));
  if (cb_type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a callback");
    return NULL;
  }
  struct compress_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  *w = (struct compress_work){.codec = a.codec, .level = a.level, .src = a.src, .dst = a.dst, .sizes = a.sizes, .count = a.count, .limit = a.limit};
  napi_value name;
  bool ok = napi_create_reference(env, argv[2], 1, &w->refs[0]) == napi_ok && napi_create_reference(env, argv[4], 1, &w->refs[1]) == napi_ok &&
            napi_create_reference(env, argv[5], 1, &w->refs[2]) == napi_ok && napi_create_reference(env, argv[7], 1, &w->callback) == napi_ok &&
            napi_create_string_utf8(env, "strata:compressBlocks", NAPI_AUTO_LENGTH, &name) == napi_ok &&
            napi_create_async_work(env, NULL, name, compress_execute, compress_complete, w, &w->work) == napi_ok && napi_queue_async_work(env, w->work) == napi_ok;
  if (!ok) {
    // Rare (out of memory in N-API): leak the few references rather than free what a half-made work item may use.
    napi_throw_error(env, "ERR_NAPI", "cannot queue the compression");
    return NULL;
  }
  return NULL;
}

static long long decode_fragment(int codec, const uint8_t *src, size_t n, uint8_t *dst, size_t room) {
  long long r = -1;
#ifdef STRATA_HAVE_ZSTD
  static ZSTD_DCtx *rctx;
  if (codec == CODEC_ZSTD) {
    if (!rctx) rctx = ZSTD_createDCtx();
    size_t z = ZSTD_decompressDCtx(rctx, dst, room, src, n);
    r = ZSTD_isError(z) ? -1 : (long long)z;
  }
#endif
#ifdef STRATA_HAVE_LZ4
  if (codec == CODEC_LZ4) r = LZ4_decompress_safe((const char *)src, (char *)dst, (int)n, (int)room);
#endif
  return r;
}

/* Decodes a fragment into dst[dst_off, dst_off + 4096) and answers the bytes decoded; throws E_CORRUPT when it does not decode. */
static napi_value decode_answer(napi_env env, int codec, const uint8_t *src, size_t n, uint8_t *dst, size_t dst_len, size_t dst_off) {
  napi_value result;
  size_t room = dst_len - dst_off > CODEC_BLOCK ? CODEC_BLOCK : dst_len - dst_off;
  long long d = decode_fragment(codec, src, n, dst + dst_off, room);
  if (d < 0) {
    napi_throw_error(env, "E_CORRUPT", "compressed fragment does not decode");
    return NULL;
  }
  NAPI_CALL(env, napi_create_int64(env, d, &result));
  return result;
}

static napi_value decompress_block(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t codec;
  uint32_t src_off, src_n, dst_off;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_args(env, info, 6, argv)) return NULL;
  NAPI_CALL(env, napi_get_value_int32(env, argv[0], &codec));
  if (!get_bytes(env, argv[1], &src, &src_len)) return NULL;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &src_off));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[3], &src_n));
  if (!get_bytes(env, argv[4], &dst, &dst_len)) return NULL;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[5], &dst_off));
  if (!require_codec(env, codec)) return NULL;
  if ((size_t)src_off + src_n > src_len || dst_off > dst_len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fragment outside its buffer");
    return NULL;
  }
  return decode_answer(env, codec, src + src_off, src_n, dst, dst_len, dst_off);
}


/* pread of exactly n bytes at `at`, resuming short reads; false with an errno error thrown, or `short_code` if the file ends first. */
static bool pread_full(napi_env env, int fd, uint8_t *buf, size_t n, off_t at, const char *short_code, const char *short_msg) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, buf + got, n - got, at + (off_t)got);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(env, errno, "pread");
      return false;
    }
    if (r == 0) {
      napi_throw_error(env, short_code, short_msg);
      return false;
    }
    got += (size_t)r;
  }
  return true;
}

static napi_value read_fragment(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int fd;
  off_t at;
  uint32_t n, dst_off;
  int32_t codec;
  uint8_t *dst;
  size_t dst_len;
  if (!get_args(env, info, 6, argv) || !get_fd(env, argv[0], &fd) || !get_off(env, argv[1], "offset", &at)) return NULL;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &n));
  NAPI_CALL(env, napi_get_value_int32(env, argv[3], &codec));
  if (!get_bytes(env, argv[4], &dst, &dst_len)) return NULL;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[5], &dst_off));
  if (!require_codec(env, codec)) return NULL;
  if (n == 0 || n > 2 * CODEC_BLOCK || dst_off > dst_len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fragment length or destination out of range");
    return NULL;
  }
  uint8_t buf[2 * CODEC_BLOCK];
  if (!pread_full(env, fd, buf, n, at, "E_CORRUPT", "data file ends inside a fragment")) return NULL;
  return decode_answer(env, codec, buf, n, dst, dst_len, dst_off);
}

/*
 * XXH64, the block hash of the store's slot table (slot_hashes), written out
 * here so the read path hashes in C: the reference algorithm of xxHash
 * (Yann Collet, BSD-2), little-endian hosts only (strata refuses others).
 */
#define XXH_P1 0x9E3779B185EBCA87ULL
#define XXH_P2 0xC2B2AE3D27D4EB4FULL
#define XXH_P3 0x165667B19E3779F9ULL
#define XXH_P4 0x85EBCA77C2B2AE63ULL
#define XXH_P5 0x27D4EB2F165667C5ULL
#define HASH_MASK53 ((1ULL << 53) - 1)

static inline uint64_t xxh_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t xxh_read64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t xxh_read32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t xxh_round(uint64_t acc, uint64_t in) {
  acc += in * XXH_P2;
  acc = xxh_rotl(acc, 31);
  return acc * XXH_P1;
}
static inline uint64_t xxh_merge(uint64_t acc, uint64_t v) {
  acc ^= xxh_round(0, v);
  return acc * XXH_P1 + XXH_P4;
}

static uint64_t xxh64(const uint8_t *p, size_t len) {
  const uint8_t *end = p + len;
  uint64_t h;
  if (len >= 32) {
    const uint8_t *limit = end - 32;
    uint64_t v1 = XXH_P1 + XXH_P2, v2 = XXH_P2, v3 = 0, v4 = 0 - XXH_P1;
    do {
      v1 = xxh_round(v1, xxh_read64(p));
      v2 = xxh_round(v2, xxh_read64(p + 8));
      v3 = xxh_round(v3, xxh_read64(p + 16));
      v4 = xxh_round(v4, xxh_read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = xxh_rotl(v1, 1) + xxh_rotl(v2, 7) + xxh_rotl(v3, 12) + xxh_rotl(v4, 18);
    h = xxh_merge(h, v1);
    h = xxh_merge(h, v2);
    h = xxh_merge(h, v3);
    h = xxh_merge(h, v4);
  } else {
    h = XXH_P5;
  }
  h += (uint64_t)len;
  while (p + 8 <= end) {
    h ^= xxh_round(0, xxh_read64(p));
    h = xxh_rotl(h, 27) * XXH_P1 + XXH_P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= (uint64_t)xxh_read32(p) * XXH_P1;
    h = xxh_rotl(h, 23) * XXH_P2 + XXH_P3;
    p += 4;
  }
  while (p < end) {
    h ^= (uint64_t)(*p) * XXH_P5;
    h = xxh_rotl(h, 11) * XXH_P1;
    p++;
  }
  h ^= h >> 33;
  h *= XXH_P2;
  h ^= h >> 29;
  h *= XXH_P3;
  h ^= h >> 32;
  return h;
}

/* Index of the first of `count` blocks whose hash is not expected[i], or -1. A NaN expected (a container's) never matches. */
static long long first_mismatch(const uint8_t *buf, size_t count, const double *expected) {
  for (size_t i = 0; i < count; i++) {
    double h = (double)(xxh64(buf + i * CODEC_BLOCK, CODEC_BLOCK) & HASH_MASK53);
    if (!(h == expected[i])) return (long long)i;
  }
  return -1;
}

/* The Float64Array `v` from element `from`, holding at least `count` elements. */
static bool get_expected(napi_env env, napi_value v, uint32_t from, size_t count, double **out) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  NAPI_CALL(env, napi_is_typedarray(env, v, &is_typed));
  if (!is_typed) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected hashes must be a Float64Array");
    return false;
  }
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected hashes must be a Float64Array");
    return false;
  }
  if ((size_t)from + count > length) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fewer expected hashes than blocks");
    return false;
  }
  *out = (double *)data + from;
  return true;
}

/* buf[at, at + count * 4096) inside the buffer `v`. */
static bool get_block_range(napi_env env, napi_value v, uint32_t at, uint32_t count, uint8_t **out) {
  uint8_t *data;
  size_t len;
  if (!get_bytes(env, v, &data, &len)) return false;
  if ((size_t)at > len || (size_t)count * CODEC_BLOCK > len - at) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "blocks outside their buffer");
    return false;
  }
  *out = data + at;
  return true;
}

static napi_value answer_index(napi_env env, long long i) {
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, i, &result));
  return result;
}

static napi_value verify_blocks(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint32_t at, count, exp_at;
  uint8_t *buf;
  double *expected;
  if (!get_args(env, info, 5, argv)) return NULL;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &at));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &count));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[4], &exp_at));
  if (!get_block_range(env, argv[0], at, count, &buf) || !get_expected(env, argv[3], exp_at, count, &expected)) return NULL;
  return answer_index(env, first_mismatch(buf, count, expected));
}

static napi_value read_blocks(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  int fd;
  off_t offset;
  uint32_t at, count, exp_at;
  uint8_t *buf;
  double *expected;
  if (!get_args(env, info, 7, argv) || !get_fd(env, argv[0], &fd) || !get_off(env, argv[1], "offset", &offset)) return NULL;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &count));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[4], &at));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[6], &exp_at));
  if (!get_block_range(env, argv[3], at, count, &buf) || !get_expected(env, argv[5], exp_at, count, &expected)) return NULL;
  if (!pread_full(env, fd, buf, (size_t)count * CODEC_BLOCK, offset, "E_SHORT", "data file ends before the blocks read")) return NULL;
  return answer_index(env, first_mismatch(buf, count, expected));
}

static napi_value tune_malloc(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  bool done = false;
#if STRATA_HAVE_MALLOPT
  done = mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024) == 1;
  done = mallopt(M_ARENA_MAX, 2) == 1 && done;
#endif
  NAPI_CALL(env, napi_get_boolean(env, done, &result));
  return result;
}

static napi_value seek_common(napi_env env, napi_callback_info info, int whence, const char *name) {
  napi_value argv[2], result;
  int fd;
  off_t offset;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_off(env, argv[1], "offset", &offset))
    return NULL;
#if STRATA_HAVE_SEEK_DATA
  off_t r = lseek(fd, offset, whence);
  if (r < 0) {
    int e = errno;
    if (e != ENXIO) {
      throw_errno(env, e, name);
      return NULL;
    }
    r = -1;
  }
  NAPI_CALL(env, napi_create_double(env, (double)r, &result));
  return result;
#else
  (void)whence;
  throw_errno(env, ENOTSUP, name);
  return NULL;
#endif
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
#if STRATA_HAVE_SEEK_DATA
  return seek_common(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
#else
  return seek_common(env, info, 0, "lseek(SEEK_DATA)");
#endif
}

static napi_value seek_hole(napi_env env, napi_callback_info info) {
#if STRATA_HAVE_SEEK_DATA
  return seek_common(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
#else
  return seek_common(env, info, 0, "lseek(SEEK_HOLE)");
#endif
}

static bool get_bool(napi_env env, napi_value v, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "exclusive must be a boolean");
    return false;
  }
  return true;
}

#if STRATA_HAVE_OFD_LOCK
/* One OFD lock request on [offset, offset + length), retried on EINTR; 0 or -1 with errno. */
static int ofd_fcntl(int fd, int cmd, short type, off_t offset, off_t length, struct flock *fl) {
  memset(fl, 0, sizeof *fl); /* l_pid must be 0 for OFD locks */
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = offset;
  fl->l_len = length;
  int r;
  do {
    r = fcntl(fd, cmd, fl);
  } while (r != 0 && errno == EINTR);
  return r;
}
#endif

static napi_value lock_range(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  int fd;
  off_t offset, length;
  bool exclusive;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd) ||
      !get_off(env, argv[1], "offset", &offset) || !get_off(env, argv[2], "length", &length) ||
      !get_bool(env, argv[3], &exclusive))
    return NULL;
#if STRATA_HAVE_OFD_LOCK
  struct flock fl;
  bool taken = true;
  if (ofd_fcntl(fd, F_OFD_SETLK, exclusive ? F_WRLCK : F_RDLCK, offset, length, &fl) != 0) {
    int e = errno;
    if (e == EAGAIN || e == EACCES) {
      taken = false;
    } else {
      throw_errno(env, e, "fcntl(F_OFD_SETLK)");
      return NULL;
    }
  }
  NAPI_CALL(env, napi_get_boolean(env, taken, &result));
  return result;
#else
  throw_errno(env, ENOTSUP, "fcntl(F_OFD_SETLK)");
  return NULL;
#endif
}

static napi_value range_locked(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  int fd;
  off_t offset, length;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_off(env, argv[1], "offset", &offset) || !get_off(env, argv[2], "length", &length))
    return NULL;
#if STRATA_HAVE_OFD_LOCK
  struct flock fl;
  if (ofd_fcntl(fd, F_OFD_GETLK, F_WRLCK, offset, length, &fl) != 0) {
    throw_errno(env, errno, "fcntl(F_OFD_GETLK)");
    return NULL;
  }
  NAPI_CALL(env, napi_get_boolean(env, fl.l_type != F_UNLCK, &result));
  return result;
#else
  throw_errno(env, ENOTSUP, "fcntl(F_OFD_GETLK)");
  return NULL;
#endif
}

#if STRATA_HAVE_INTERRUPT
static volatile sig_atomic_t interrupt_seen = 0;
static int interrupt_armed = 0;
static struct sigaction interrupt_before;

/* Async-signal-safe: sets a flag, or on the second signal writes and _exits. */
static void on_interrupt(int sig) {
  (void)sig;
  if (interrupt_seen) {
    static const char clear[] = "\r\033[K";
    static const char msg[] = "strata: interrupted again: stopping at once, without cleaning up\n";
    ssize_t r;
    if (isatty(2)) r = write(2, clear, sizeof clear - 1);
    r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(130);
  }
  interrupt_seen = 1;
}
#endif

static napi_value interrupt_arm(napi_env env, napi_callback_info info) {
  napi_value result;
  bool armed = false;
#if STRATA_HAVE_INTERRUPT
  if (!interrupt_armed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    /* Restart interrupted system calls: a read or fsync must not fail with EINTR. */
    sa.sa_flags = SA_RESTART;
    interrupt_seen = 0;
    if (sigaction(SIGINT, &sa, &interrupt_before) != 0) {
      throw_errno(env, errno, "sigaction");
      return NULL;
    }
    interrupt_armed = 1;
  }
  armed = true;
#endif
  NAPI_CALL(env, napi_get_boolean(env, armed, &result));
  return result;
}

static napi_value interrupt_disarm(napi_env env, napi_callback_info info) {
#if STRATA_HAVE_INTERRUPT
  if (interrupt_armed) {
    sigaction(SIGINT, &interrupt_before, NULL);
    interrupt_armed = 0;
  }
#endif
  return NULL;
}

static napi_value interrupted(napi_env env, napi_callback_info info) {
  napi_value result;
#if STRATA_HAVE_INTERRUPT
  bool seen = interrupt_seen != 0;
#else
  bool seen = false;
#endif
  NAPI_CALL(env, napi_get_boolean(env, seen, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value features, v;
  NAPI_CALL(env, napi_create_object(env, &features));
  NAPI_CALL(env, napi_get_boolean(env, STRATA_HAVE_PUNCH, &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "punchHole", v));
  NAPI_CALL(env, napi_get_boolean(env, STRATA_HAVE_SEEK_DATA, &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "seekData", v));
  NAPI_CALL(env, napi_get_boolean(env, STRATA_HAVE_OFD_LOCK, &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "ofdLock", v));
  NAPI_CALL(env, napi_get_boolean(env, STRATA_HAVE_INTERRUPT, &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "interrupt", v));
  NAPI_CALL(env, napi_get_boolean(env, STRATA_HAVE_WRITEBACK, &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "writeback", v));
  NAPI_CALL(env, napi_get_boolean(env, codec_built(CODEC_ZSTD), &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "zstd", v));
  NAPI_CALL(env, napi_get_boolean(env, codec_built(CODEC_LZ4), &v));
  NAPI_CALL(env, napi_set_named_property(env, features, "lz4", v));

  napi_property_descriptor props[] = {
      {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeAt", NULL, write_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"compressBlocks", NULL, compress_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"compressBlocksAsync", NULL, compress_blocks_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decompressBlock", NULL, decompress_block, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readFragment", NULL, read_fragment, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyBlocks", NULL, verify_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readBlocks", NULL, read_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tuneMalloc", NULL, tune_malloc, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startWriteback", NULL, start_writeback, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lockRange", NULL, lock_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rangeLocked", NULL, range_locked, NULL, NULL, NULL, napi_enumerable, NULL},
      {"interruptArm", NULL, interrupt_arm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"interruptDisarm", NULL, interrupt_disarm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"interrupted", NULL, interrupted, NULL, NULL, NULL, napi_enumerable, NULL},
      {"features", NULL, NULL, NULL, NULL, features, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
