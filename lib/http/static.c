/* The static UI from an in-memory table (see pl/static.h). Loading is the only place that
 * touches the file system; serving reads the table only, from any thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_internal.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/static.h"
#include "pl/time.h"

#define DEFAULT_MAX_FILE  (32u << 20)
#define DEFAULT_MAX_TOTAL (256u << 20)
#define MAX_DEPTH         16
#define MAX_FILES         20000
#define ETAG_HEX          20 /* 80 bits of BLAKE2b: collisions are not a concern here */
#define HASH_MIN_CHARS    8  /* Vite's default [hash] is 8 base64url characters */

struct variant {
    char *data; /* NULL: no such variant */
    size_t len;
    char etag[ETAG_HEX + 3]; /* quoted */
};

struct entry {
    char *path; /* URL path, "/assets/index-abc.js" */
    const char *mime;
    struct variant plain, gz;
    time_t mtime;
    char last_modified[32];
    bool immutable, html;
};

struct pl_static {
    struct entry *v; /* sorted by path */
    size_t n;
    const struct entry *index; /* "/index.html" or NULL */
    char *csp;
    char *immutable_prefix;
    char **no_fallback;
    size_t nno_fallback;
};

/* ---- paths ---- */

long pl_static_normalize(const char *raw, size_t len, char *out, size_t cap)
{
    if (len == 0 || raw[0] != '/' || cap < 2) return -1;
    size_t o = 0, i = 0;
    bool dir = false; /* the path names a folder: it ended with '/' or a "." segment */
    while (i < len) {
        /* one segment: skip the slashes before it, then decode up to the next raw '/' */
        while (i < len && raw[i] == '/')
            i++;
        if (i == len) {
            dir = true;
            break;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = '/';
        size_t seg = o;
        while (i < len && raw[i] != '/') {
            unsigned char c = (unsigned char)raw[i++];
            if (c == '%') {
                int h = i + 1 < len ? pl_http_hexval(raw[i]) : -1,
                    l = h >= 0 ? pl_http_hexval(raw[i + 1]) : -1;
                if (l < 0) return -1;
                c = (unsigned char)(h * 16 + l);
                i += 2;
            }
            /* NUL, control bytes and backslashes never name a file we serve. An encoded '/'
             * would hide a separator inside a segment ("..%2f"): refused too. */
            if (c < 0x20 || c == 0x7f || c == '\\' || c == '/') return -1;
            if (o + 1 >= cap) return -1;
            out[o++] = (char)c;
        }
        size_t seg_len = o - seg;
        dir = false;
        if (seg_len == 1 && out[seg] == '.') {
            o = seg - 1; /* "." : drop the segment and its slash */
            dir = true;
        } else if (seg_len == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            return -1;
        }
    }
    /* The root, or a folder: keep one trailing slash ("/docs/" means "/docs/index.html"). */
    if (o == 0 || dir) {
        if (o + 1 >= cap) return -1;
        out[o++] = '/';
    }
    out[o] = 0;
    return (long)o;
}

/* ---- Accept-Encoding ---- */

/* Parses the q parameter of one list element's parameters ("; q=0.5"); 1000 = q 1. */
static int parse_q(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p < end && *p == '1') return 1000;
            if (p < end && *p == '0') {
                int q = 0, scale = 100;
                p++;
                if (p < end && *p == '.') {
                    p++;
                    while (p < end && *p >= '0' && *p <= '9' && scale > 0) {
                        q += (*p - '0') * scale;
                        scale /= 10;
                        p++;
                    }
                }
                return q;
            }
            return 0; /* malformed: treat as not acceptable */
        }
        while (p < end && *p != ';')
            p++;
    }
    return 1000;
}

bool pl_static_accepts_gzip(const char *ae)
{
    if (!ae) return false;
    int gzip_q = -1, star_q = -1;
    const char *p = ae;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *tok_end = p;
        while (tok_end < end && *tok_end != ';' && *tok_end != ' ' && *tok_end != '\t')
            tok_end++;
        size_t tl = (size_t)(tok_end - p);
        int q = parse_q(tok_end, end);
        if ((tl == 4 && strncasecmp(p, "gzip", 4) == 0) ||
            (tl == 6 && strncasecmp(p, "x-gzip", 6) == 0)) {
            if (q > gzip_q) gzip_q = q;
        } else if (tl == 1 && *p == '*') {
            star_q = q;
        }
        p = *end ? end + 1 : end;
    }
    if (gzip_q >= 0) return gzip_q > 0;
    return star_q > 0;
}

/* ---- MIME types ---- */

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"gz", "application/gzip"},
};

static const char *mime_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot && dot[1]) {
        for (size_t i = 0; i < sizeof mime_types / sizeof *mime_types; i++)
            if (strcasecmp(dot + 1, mime_types[i].ext) == 0) return mime_types[i].type;
    }
    return "application/octet-stream";
}

static bool hash_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* "name-<hash>.ext" (Vite's assets/[name]-[hash][extname]) under the immutable prefix: the
 * last dot starts the extension, and at least HASH_MIN_CHARS hash characters follow the
 * last '-' before it. */
static bool is_hashed(const char *path, const char *prefix)
{
    if (strncmp(path, prefix, strlen(prefix)) != 0) return false;
    const char *base = strrchr(path, '/') + 1;
    const char *dot = strrchr(base, '.');
    if (!dot) return false;
    const char *dash = NULL;
    for (const char *p = base; p < dot; p++)
        if (*p == '-') dash = p;
    if (!dash || dot - dash - 1 < HASH_MIN_CHARS) return false;
    for (const char *p = dash + 1; p < dot; p++)
        if (!hash_char(*p)) return false;
    return true;
}

/* ---- loading ---- */

struct found {
    char *url;  /* "/a/b.js" */
    char *file; /* resolved path to open */
};

struct walk {
    char root_real[PATH_MAX];
    size_t root_len;
    struct found *v;
    size_t n, cap;
    char *err;
    size_t errlen;
    int rc;
};

static void walk_add(struct walk *w, const char *url, const char *file)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->v = pl_xrealloc(w->v, w->cap * sizeof *w->v);
    }
    w->v[w->n].url = pl_xstrdup(url);
    w->v[w->n].file = pl_xstrdup(file);
    w->n++;
}

static bool inside_root(const struct walk *w, const char *real)
{
    return strncmp(real, w->root_real, w->root_len) == 0 && real[w->root_len] == '/';
}

static void walk_dir(struct walk *w, const char *dir, const char *url, int depth)
{
    if (depth > MAX_DEPTH) {
        pl_warn("static: folder too deep, skipped", PL_STR("path", url));
        return;
    }
    DIR *d = opendir(dir);
    if (!d) {
        pl_warn("static: folder unreadable, skipped", PL_STR("path", url));
        return;
    }
    struct dirent *de;
    while (w->rc == 0 && (de = readdir(d)) != NULL) {
        /* Dot files (.env, .git, ...) and "." / ".." are never served. */
        if (de->d_name[0] == '.') continue;
        char fs[PATH_MAX], u[PATH_MAX], real[PATH_MAX];
        if ((size_t)snprintf(fs, sizeof fs, "%s/%s", dir, de->d_name) >= sizeof fs ||
            (size_t)snprintf(u, sizeof u, "%s/%s", url, de->d_name) >= sizeof u)
            continue;
        /* Names the normaliser would refuse could never be requested. */
        bool odd = false;
        for (const char *p = de->d_name; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') odd = true;
        if (odd) continue;
        struct stat lst, st;
        if (lstat(fs, &lst) != 0) continue;
        if (S_ISDIR(lst.st_mode)) {
            walk_dir(w, fs, u, depth + 1);
        } else if (S_ISREG(lst.st_mode) || S_ISLNK(lst.st_mode)) {
            /* Every file, symlink or not, must resolve inside the root. Symlinked folders are
             * not followed (no cycles). */
            if (!realpath(fs, real) || !inside_root(w, real)) {
                pl_warn("static: path leaves the web root, skipped", PL_STR("path", u));
                continue;
            }
            if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) continue;
            if (w->n >= MAX_FILES) {
                snprintf(w->err, w->errlen, "more than %d files in the web root", MAX_FILES);
                w->rc = PL_E_TOOBIG;
                break;
            }
            walk_add(w, u, real);
        }
    }
    closedir(d);
}

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->url, ((const struct found *)b)->url);
}

static const struct found *find_found(const struct walk *w, const char *url)
{
    struct found key = {.url = (char *)url};
    return bsearch(&key, w->v, w->n, sizeof *w->v, cmp_found);
}

/* Reads a whole regular file (not following a symlink: `file` is already resolved). */
static int read_file(const char *file, size_t max, char **data, size_t *len, time_t *mtime)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return PL_E_INVALID;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return PL_E_TOOBIG;
    }
    size_t n = (size_t)st.st_size;
    char *buf = pl_xmalloc(n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(buf);
        return PL_E_INVALID;
    }
    *data = buf;
    *len = n;
    if (mtime) *mtime = st.st_mtime;
    return 0;
}

static void set_etag(struct variant *v)
{
    unsigned char h[crypto_generichash_BYTES_MIN];
    crypto_generichash(h, sizeof h, (const unsigned char *)v->data, v->len, NULL, 0);
    char hex[sizeof h * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(v->etag, sizeof v->etag, "\"%.*s\"", ETAG_HEX, hex);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static const struct entry *find_entry(const struct pl_static *st, const char *path)
{
    struct entry key = {.path = (char *)path};
    return bsearch(&key, st->v, st->n, sizeof *st->v, cmp_entry);
}

/* Walks the root: w->v gets every file it may serve, sorted by URL path. Returns 0, or an
 * error with w->err set. */
static int walk_root(const char *root, struct walk *w)
{
    struct stat rst;
    if (!root || !*root || stat(root, &rst) != 0 || !S_ISDIR(rst.st_mode)) {
        snprintf(w->err, w->errlen, "%s is not a folder", root ? root : "(null)");
        return PL_E_NOTFOUND;
    }
    if (!realpath(root, w->root_real)) {
        int rc = -errno;
        snprintf(w->err, w->errlen, "%s: %s", root, strerror(errno));
        return rc;
    }
    w->root_len = strlen(w->root_real);
    if (w->root_len == 1) w->root_len = 0; /* "/" as the root: inside_root tests "/..." */
    walk_dir(w, w->root_real, "", 0);
    qsort(w->v, w->n, sizeof *w->v, cmp_found);
    return w->rc;
}

static void walk_free(struct walk *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].url);
        free(w->v[i].file);
    }
    free(w->v);
    free(w);
}

/* "x.gz" next to "x" is x's precompressed variant, not a file of its own. */
static bool is_variant(const struct walk *w, const struct found *f)
{
    if (!ends_with(f->url, ".gz")) return false;
    char stem[PATH_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(f->url) - 3), f->url);
    return find_found(w, stem) != NULL;
}

/* Reads the .gz variant of f into e->gz when there is one worth keeping. Returns its size
 * (0 for none). */
static size_t load_gz(const struct walk *w, const struct found *f, size_t max_file, struct entry *e)
{
    if (ends_with(f->url, ".gz")) return 0;
    char gzurl[PATH_MAX];
    snprintf(gzurl, sizeof gzurl, "%s.gz", f->url);
    const struct found *g = find_found(w, gzurl);
    time_t gz_mtime = 0;
    if (!g || read_file(g->file, max_file, &e->gz.data, &e->gz.len, &gz_mtime) != 0) return 0;
    /* A stale or useless variant is worse than none. */
    if (gz_mtime < e->mtime || e->gz.len >= e->plain.len) {
        if (gz_mtime < e->mtime)
            pl_warn("static: .gz older than its file, ignored", PL_STR("path", f->url));
        free(e->gz.data);
        e->gz.data = NULL;
        e->gz.len = 0;
        return 0;
    }
    set_etag(&e->gz);
    return e->gz.len;
}

/* Reads f and its variant into e (untouched when f is skipped); *bytes gets their size. */
static int load_file(const struct walk *w, const struct found *f, size_t max_file, struct entry *e,
                     size_t *bytes)
{
    int r = read_file(f->file, max_file, &e->plain.data, &e->plain.len, &e->mtime);
    if (r) {
        pl_warn("static: file skipped", PL_STR("path", f->url), PL_STR("error", pl_strerror(r)));
        return r;
    }
    *bytes = e->plain.len + load_gz(w, f, max_file, e);
    return 0;
}

/* Fills the table from the walk, in its sorted order. Returns 0 or PL_E_TOOBIG (err set). */
static int load_entries(struct pl_static *st, const struct walk *w, size_t max_file,
                        size_t max_total, char *err, size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct found *f = &w->v[i];
        struct entry *e = &st->v[st->n];
        size_t bytes;
        if (is_variant(w, f) || load_file(w, f, max_file, e, &bytes) != 0) continue;
        total += bytes;
        if (total > max_total) {
            snprintf(err, errlen, "the web root holds more than %zu bytes", max_total);
            free(e->plain.data);
            free(e->gz.data);
            return PL_E_TOOBIG;
        }
        e->path = pl_xstrdup(f->url);
        e->mime = mime_of(e->path);
        e->html = strncmp(e->mime, "text/html", 9) == 0;
        set_etag(&e->plain);
        pl_time_format_http(e->mtime, e->last_modified);
        st->n++;
    }
    return 0;
}

/* The settings of a loaded table: CSP, immutable names, the prefixes without fallback. */
static void apply_config(struct pl_static *st, const struct pl_static_config *cfg)
{
    st->csp = pl_xstrdup(cfg->csp ? cfg->csp : PL_STATIC_DEFAULT_CSP);
    st->immutable_prefix = pl_xstrdup(cfg->immutable_prefix ? cfg->immutable_prefix : "/assets/");
    for (size_t i = 0; i < st->n; i++)
        st->v[i].immutable = is_hashed(st->v[i].path, st->immutable_prefix);
    if (cfg->no_fallback) {
        while (cfg->no_fallback[st->nno_fallback])
            st->nno_fallback++;
        st->no_fallback = pl_xcalloc(st->nno_fallback + 1, sizeof *st->no_fallback);
        for (size_t i = 0; i < st->nno_fallback; i++)
            st->no_fallback[i] = pl_xstrdup(cfg->no_fallback[i]);
    }
    st->index = find_entry(st, "/index.html");
}

int pl_static_load(const struct pl_static_config *cfg, struct pl_static **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (errlen) err[0] = 0;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return PL_E_INVALID;
    }
    struct walk *w = pl_xcalloc(1, sizeof *w);
    w->err = err;
    w->errlen = errlen;
    struct pl_static *st = NULL;
    int rc = walk_root(cfg->root, w);
    if (rc == 0) {
        st = pl_xcalloc(1, sizeof *st);
        st->v = pl_xcalloc(w->n, sizeof *st->v);
        rc = load_entries(st, w, cfg->max_file_bytes ? cfg->max_file_bytes : DEFAULT_MAX_FILE,
                          cfg->max_total_bytes ? cfg->max_total_bytes : DEFAULT_MAX_TOTAL, err,
                          errlen);
    }
    walk_free(w);
    if (rc) {
        pl_static_destroy(st);
        return rc;
    }
    apply_config(st, cfg); /* entries are already sorted: taken in the walk's order */
    *out = st;
    return 0;
}

long pl_static_csp(const char *origin, char *out, size_t cap)
{
    const char *scheme = NULL, *rest = NULL;
    if (strncmp(origin, "http://", 7) == 0) {
        scheme = "ws://";
        rest = origin + 7;
    } else if (strncmp(origin, "https://", 8) == 0) {
        scheme = "wss://";
        rest = origin + 8;
    }
    if (!rest || !*rest) return -1;
    for (const char *p = rest; *p; p++) {
        unsigned char c = (unsigned char)*p;
        /* a host[:port] only: nothing that could end the directive or add a source */
        if (c <= ' ' || c >= 0x7f || strchr("/;,'\"\\", c)) return -1;
    }
    int n = snprintf(out, cap, "%s %s%s%s", PL_STATIC_CSP_HEAD, scheme, rest, PL_STATIC_CSP_TAIL);
    if (n < 0 || (size_t)n >= cap) return -1;
    return n;
}

void pl_static_destroy(struct pl_static *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) {
        free(st->v[i].path);
        free(st->v[i].plain.data);
        free(st->v[i].gz.data);
    }
    free(st->v);
    for (size_t i = 0; i < st->nno_fallback; i++)
        free(st->no_fallback[i]);
    free(st->no_fallback);
    free(st->csp);
    free(st->immutable_prefix);
    free(st);
}

size_t pl_static_count(const struct pl_static *st)
{
    return st ? st->n : 0;
}

/* ---- serving ---- */

/* Weak comparison (RFC 9110 13.1.2): "W/" prefixes are ignored; "*" matches anything. */
static bool etag_matches(const char *list, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) break;
        if (*p == '*') return true;
        if (p[0] == 'W' && p[1] == '/') p += 2;
        const char *start = p;
        if (*p == '"') {
            const char *q = strchr(p + 1, '"');
            if (!q) return false;
            p = q + 1;
        } else {
            while (*p && *p != ',')
                p++;
        }
        if ((size_t)(p - start) == elen && memcmp(start, etag, elen) == 0) return true;
    }
    return false;
}

static bool under_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '/');
}

static bool may_fall_back(const struct pl_static *st, const char *path)
{
    for (size_t i = 0; i < st->nno_fallback; i++)
        if (under_prefix(path, st->no_fallback[i])) return false;
    const char *base = strrchr(path, '/') + 1;
    return strchr(base, '.') == NULL;
}

static void serve_entry(const struct pl_static *st, struct pl_http_request *req,
                        const struct entry *e)
{
    bool gz = e->gz.data && pl_static_accepts_gzip(pl_req_header(req, "accept-encoding"));
    const struct variant *v = gz ? &e->gz : &e->plain;
    pl_resp_header(req, "ETag", v->etag);
    pl_resp_header(req, "Last-Modified", e->last_modified);
    pl_resp_header(req, "Cache-Control",
                   e->immutable ? "public, max-age=31536000, immutable" : "no-cache");
    if (e->gz.data) pl_resp_header(req, "Vary", "Accept-Encoding");
    if (e->html) pl_resp_header(req, "Content-Security-Policy", st->csp);
    /* If-None-Match wins; If-Modified-Since counts only without it (RFC 9110 13.2.2). */
    const char *inm = pl_req_header(req, "if-none-match");
    const char *ims = pl_req_header(req, "if-modified-since");
    int64_t since;
    bool not_modified = inm ? etag_matches(inm, v->etag)
                            : ims && pl_time_parse_http(ims, &since) == 0 && e->mtime <= since;
    if (not_modified) {
        pl_respond(req, 304, NULL, NULL, 0);
        return;
    }
    if (gz) pl_resp_header(req, "Content-Encoding", "gzip");
    pl_respond(req, 200, e->mime, v->data, v->len);
}

void pl_static_serve(const struct pl_static *st, struct pl_http_request *req)
{
    const char *raw = pl_req_path(req);
    size_t len = strlen(raw);
    size_t cap = len + sizeof "index.html" + 2;
    char *path = pl_req_alloc(req, cap);
    long n = pl_static_normalize(raw, len, path, cap);
    if (n < 0) {
        pl_respond_problem(req, 400, "malformed path", NULL);
        return;
    }
    if (!st) {
        pl_respond_problem(req, 404, "no such resource", NULL);
        return;
    }
    bool fall_back = may_fall_back(st, path);
    if (path[n - 1] == '/') memcpy(path + n, "index.html", sizeof "index.html");
    const struct entry *e = find_entry(st, path);
    if (!e && fall_back) e = st->index;
    if (!e) {
        pl_respond_problem(req, 404, "no such resource", NULL);
        return;
    }
    serve_entry(st, req, e);
}
