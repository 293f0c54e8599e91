/* Replays a harness's seed corpus and saved regressions without libFuzzer, as an ordinary
 * test: ctest runs it on the sanitizer build and `make memcheck` under valgrind, so the code
 * the harness drives is checked by gcc's ASan/UBSan and by memcheck too, not only by
 * libFuzzer's clang build. REPLAY_DIRS is a '|'-separated list of folders (compile time). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *p = realloc(buf, cap);
            if (!p) abort();
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0) break;
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

int main(void)
{
    char dirs[] = REPLAY_DIRS;
    int files = 0;
    for (char *save = NULL, *dir = strtok_r(dirs, "|", &save); dir;
         dir = strtok_r(NULL, "|", &save)) {
        DIR *d = opendir(dir);
        if (!d) continue; /* a harness may have no regressions yet */
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (replay_file(path) == 0) files++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", files);
    if (files == 0) {
        fprintf(stderr, "no input found in %s\n", REPLAY_DIRS);
        return 1;
    }
    return 0;
}
