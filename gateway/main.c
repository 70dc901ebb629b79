/* sluice: the gateway binary and its CLI. */
#include <stdio.h>
#include <string.h>

#include "sl_build_config.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("sluice %s\n", SL_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: sluice serve|check -c FILE\n");
    return 2;
}
