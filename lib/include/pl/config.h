/* config: typed settings from the environment and an optional .env file.
 *
 * The application describes its settings as a table (name, type, default, bounds, offset
 * into its own struct); pl_config_load() fills the struct. The environment wins over the
 * .env file. A value that does not parse or is out of bounds fails with one line naming
 * the setting, for main() to print and exit 2. */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pl/error.h"

enum pl_setting_type {
    PL_SET_STRING, /* char * (heap, freed by pl_config_dispose) */
    PL_SET_INT,    /* long long within [min, max] */
    PL_SET_BOOL,   /* bool: 1/0, on/off, true/false, yes/no */
    PL_SET_RATE,   /* struct pl_rate: "count/seconds" */
};

struct pl_rate {
    int count;
    int seconds;
};

struct pl_setting {
    const char *name;
    enum pl_setting_type type;
    const char *def; /* default as text; NULL = none (see required) */
    size_t offset;   /* offsetof(struct yours, field) */
    long long min, max;
    bool required;    /* must be set (and non-empty) */
    bool secret;      /* redacted by pl_config_log */
    const char *help; /* one line, for --help */
};

/* Reads `env_file` (may be NULL or missing: not an error), then the environment, then
 * defaults. Returns 0, or PL_E_CONFIG with a one-line reason in err. Strings allocated into
 * `out` are freed by pl_config_dispose() even on failure. */
PL_MUST_USE int pl_config_load(const struct pl_setting *table, size_t n, void *out,
                               const char *env_file, char *err, size_t errlen);

/* Parses one .env text: KEY=VALUE lines, `#` comments, optional `export `, single or double
 * quotes. Calls fn for each pair (key and value are NUL-terminated, borrowed for the call).
 * Returns 0 or PL_E_CONFIG with "line N: reason" in err. */
PL_MUST_USE int pl_config_parse_env(const char *text, size_t len,
                                    void (*fn)(const char *key, const char *value, void *ctx),
                                    void *ctx, char *err, size_t errlen);

void pl_config_dispose(const struct pl_setting *table, size_t n, void *out);

/* Logs one "config" line with every setting, secrets (and passwords inside URLs) redacted. */
void pl_config_log(const struct pl_setting *table, size_t n, const void *cfg);

#endif
