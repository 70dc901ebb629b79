/* conf/sluice.yaml and each conf/examples/NAME.yaml load with no errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static void loads_cleanly(void **state)
{
    const char *path = *state;
    sl_diag d;
    sl_diag_init(&d, NULL);
    sl_config *c = sl_config_load(path, &d);
    for (size_t i = 0; i < d.n; i++)
        print_message("# %s\n", d.lines[i]);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    assert_true(c->n_listen > 0);
    sl_config_unref(c);
    sl_diag_free(&d);
}

int main(void)
{
    const char *root = getenv("SL_SOURCE_ROOT");
    char dir[3000];
    static char paths[64][4096];
    static struct CMUnitTest tests[64];
    size_t n = 0;
    if (!root)
        root = ".";
    snprintf(paths[n], sizeof paths[n], "%s/conf/sluice.yaml", root);
    n++;
    snprintf(dir, sizeof dir, "%s/conf/examples", root);
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0)
            snprintf(paths[n++], sizeof paths[0], "%s/%.200s", dir, e->d_name);
    }
    if (dp)
        closedir(dp);
    for (size_t i = 0; i < n; i++) {
        const char *name = strstr(paths[i], "conf/");
        tests[i] = (struct CMUnitTest){.name = name ? name : paths[i], .test_func = loads_cleanly,
                                       .initial_state = paths[i]};
    }
    return _cmocka_run_group_tests("conf_files", tests, n, NULL, NULL);
}
