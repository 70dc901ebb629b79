/* The CLI's admin commands (sluice key ..., sluice usage): they talk to a running
 * gateway's admin API, whose URL and token come from the config (-c) or from --admin URL
 * and SLUICE_ADMIN_TOKEN. */
#ifndef SL_CLI_ADMIN_H
#define SL_CLI_ADMIN_H

int sl_cli_key(int argc, char **argv);
int sl_cli_usage(int argc, char **argv);

#endif
