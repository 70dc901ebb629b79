/* Replays fuzz inputs through a target's LLVMFuzzerTestOneInput in a normal build (no
 * libFuzzer): every file named, and every file inside every folder named. One TAP line per
 * file; a crash or a sanitizer report ends the program, which meson counts as a failure. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int n_ok, n_bad;

static void replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("not ok %d - %s (cannot open)\n", ++n_ok + n_bad, path);
        n_bad++;
        return;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    /* a copy of exactly the file's size, so ASan sees any read past the input */
    uint8_t *exact = malloc(got ? got : 1);
    memcpy(exact, buf, got);
    free(buf);
    LLVMFuzzerTestOneInput(exact, got);
    free(exact);
    n_ok++;
    printf("ok %d - replay %s\n", n_ok + n_bad, path);
    fflush(stdout);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static void replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return; /* a folder of regressions may not exist yet */
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    struct dirent **list;
    int n = scandir(path, &list, NULL, by_name);
    for (int i = 0; i < n; i++) {
        if (list[i]->d_name[0] != '.') {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, list[i]->d_name);
            replay(sub);
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++)
        replay(argv[i]);
    if (n_ok + n_bad == 0)
        printf("not ok 1 - no inputs found in the folders named\n"), n_bad = 1;
    printf("1..%d\n", n_ok + n_bad);
    return n_bad ? 1 : 0;
}
