/* The gateway process: worker threads with their listeners, signals, graceful shutdown. */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include "config.h"
#include "err.h"

/* Serve cfg until SIGTERM/SIGINT, then stop accepting, let requests in flight finish
 * (up to server.shutdown_timeout) and return 0. Returns -1 with err when it cannot
 * start (a listen address in use, a bad certificate...). Takes a reference on cfg. */
int sl_server_run(sl_config *cfg, sl_err *err);

#endif
