/* Fuzz target: the YAML config loader (gateway/yaml_tree.c, config*.c). The input is
 * written to a file and loaded as `sluice serve -c` / `sluice check` would: a config comes
 * back, or a diagnostic list, never a crash. The YAML reader is also run on the buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/sluice-fuzz-config.%d.yaml", (int)getpid());
        setenv("SLUICE_SECRET", "fuzz-secret-0123456789abcdef", 1);
        setenv("FUZZ_KEY", "sk-fuzz", 1);
        sl_log_set_level(SL_LOG_ERROR);
    }
    sl_diag d;
    sl_diag_init(&d, "fuzz.yaml");
    d.quiet = true;
    sl_ynode *n = sl_yaml_load_string((const char *)data, size, "fuzz.yaml", &d);
    sl_ynode_free(n);
    sl_diag_free(&d);

    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    sl_diag_init(&d, path);
    d.quiet = true;
    sl_config *c = sl_config_load(path, &d);
    if (c)
        sl_config_unref(c);
    sl_diag_free(&d);
    unlink(path);
    return 0;
}
