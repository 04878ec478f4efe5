/* config-diff.h: what a reload (SIGHUP) cannot apply in place. */
#ifndef MTLSGW_CONFIG_DIFF_H
#define MTLSGW_CONFIG_DIFF_H

#include <stddef.h>

struct config;

/*
 * The keys that differ between the running config o and the new one n and
 * take effect only with a restart (sockets, token, pki dir, the kernel side,
 * uplinks), named as in the file ("[management] listen", "[uplink hub]"),
 * comma-separated into out. Returns how many.
 */
size_t config_restart_diff(const struct config *o, const struct config *n, char *out,
                           size_t len);

#endif
