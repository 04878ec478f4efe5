/*
 * access.h: why the current (effective) user cannot use a file, said so an
 * administrator can fix it: which user, which file or directory on the way,
 * its owner and mode, and the chown or chmod that fixes it.
 */
#ifndef MTLSGW_ACCESS_H
#define MTLSGW_ACCESS_H

#include <stddef.h>

/*
 * 0 when the effective user may use path with mode (R_OK, W_OK, X_OK as
 * access(2)), or when it does not exist (-ENOENT is left to the caller).
 * -EACCES, with why saying who cannot do what on which object and the fix.
 */
int access_explain(const char *path, int mode, char *why, size_t len);

/*
 * The same for the token's files: the PIN file, and for SoftHSM (the
 * SOFTHSM2_CONF of the environment) its token directory and each token in
 * it. 0, or -EACCES with why for the first one that cannot be used.
 */
int access_explain_token(const char *pin_file, char *why, size_t len);

#endif
