/* static: the static web UI, served from memory.
 *
 * Like nginx's open_file_cache, but simpler: at start-up pl_static_load walks a folder once
 * (regular files only; names starting with '.' and symlinks that resolve outside the folder
 * are skipped), reads every file and its precompressed `<name>.gz` sibling, and computes a
 * strong ETag (BLAKE2b of the bytes) and Last-Modified (the file's mtime). The table is
 * read-only afterwards and shared by every worker thread: serving is a binary search with no
 * file I/O on the event loop, and nothing outside the table can be served, so path
 * traversal is impossible by construction. The request path is still percent-decoded and
 * normalised, and `..` segments, NUL, backslashes and control bytes are refused (400).
 *
 * Responses: ETag, Last-Modified, 304 for a matching If-None-Match (or, without one, an
 * If-Modified-Since not older than the file), the `.gz` variant with Content-Encoding: gzip
 * and Vary: Accept-Encoding when Accept-Encoding accepts gzip (q > 0), Cache-Control
 * `public, max-age=31536000, immutable` for content-hashed names under the immutable prefix
 * (Vite's /assets/name-<hash>.ext) and `no-cache` for everything else, a Content-Type from
 * an extension table, and a Content-Security-Policy on HTML. A path that is not in the table
 * and whose last segment has no extension gets index.html (single-page-app fallback), except
 * under the excluded prefixes (/api, /health), which stay 404 problem+json. Changes to the
 * folder after loading are not seen until the next start (the build is immutable). */
#ifndef PL_STATIC_H
#define PL_STATIC_H

#include <stddef.h>

#include "pl/error.h"
#include "pl/http.h"

/* The policy of the bundled UI: same-origin scripts, styles, images and fonts, fetch to the
 * same origin, no inline script or style, no framing, no plugins. The default has no
 * WebSocket source beyond 'self' (which CSP Level 2 browsers do not apply to ws:/wss:):
 * pl_static_csp adds the public origin's own ws:// or wss:// form, and nothing else. */
#define PL_STATIC_CSP_HEAD                                                                         \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "font-src 'self'; connect-src 'self'"
#define PL_STATIC_CSP_TAIL                                                                         \
    "; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define PL_STATIC_DEFAULT_CSP PL_STATIC_CSP_HEAD PL_STATIC_CSP_TAIL

/* The UI's policy for a site served at `origin` ("http://host[:port]" or "https://..."):
 * PL_STATIC_DEFAULT_CSP with `connect-src 'self' ws://host[:port]` (wss:// for https), so
 * the page may open WebSockets to its own origin and to no other host. Writes a
 * NUL-terminated string into out; returns its length, or -1 when `origin` is not an
 * http(s) origin (no path, no whitespace, quote, comma or semicolon) or it does not fit. */
long pl_static_csp(const char *origin, char *out, size_t cap);

struct pl_static_config {
    const char *root; /* folder to load, e.g. "web/dist" */
    const char *csp;  /* Content-Security-Policy for HTML; NULL: PL_STATIC_DEFAULT_CSP */
    /* Path prefixes that never fall back to index.html (each matches itself and what lies
     * below it: "/api" covers "/api" and "/api/x", not "/apix"). NULL-terminated array, may
     * be NULL. Borrowed until pl_static_load returns (copied). */
    const char *const *no_fallback;
    const char *immutable_prefix; /* NULL: "/assets/" */
    size_t max_file_bytes;        /* 0: 32 MiB; larger files are skipped with a warning */
    size_t max_total_bytes;       /* 0: 256 MiB; loading stops with PL_E_TOOBIG beyond */
};

struct pl_static;

/* Loads the folder into a new table. Returns 0, PL_E_NOTFOUND when the root does not exist
 * or is not a folder (the caller decides whether that matters), PL_E_TOOBIG past
 * max_total_bytes, or a libuv-style negative errno for an unreadable root; `err` gets a
 * reason. Blocking (start-up only). The caller frees the table with pl_static_destroy. */
PL_MUST_USE int pl_static_load(const struct pl_static_config *cfg, struct pl_static **out,
                               char *err, size_t errlen);
void pl_static_destroy(struct pl_static *st);
/* Number of files served (a `.gz` sibling counts with its file). */
size_t pl_static_count(const struct pl_static *st);

/* Answers a GET or HEAD request from the table (use it as, or from, pl_http_config's
 * fallback). `st` may be NULL (no UI loaded): then every path answers 404. Answers at once. */
void pl_static_serve(const struct pl_static *st, struct pl_http_request *req);

/* Normalises a raw request path (without the query): percent-decodes it, collapses repeated
 * slashes, drops "." segments and keeps a trailing slash. Writes a NUL-terminated path that
 * starts with '/' into out (cap >= len + 2 always suffices) and returns its length, or
 * returns -1 when the path does not start with '/', has a malformed escape, decodes to a
 * NUL, a backslash or a control byte, has a ".." segment, or does not fit. */
long pl_static_normalize(const char *raw, size_t len, char *out, size_t cap);

/* Whether an Accept-Encoding header value accepts gzip (an explicit "gzip" or "x-gzip"
 * with q > 0, or else "*" with q > 0). NULL accepts nothing. */
bool pl_static_accepts_gzip(const char *accept_encoding);

#endif
