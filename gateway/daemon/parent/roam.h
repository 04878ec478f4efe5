/*
 * roam.h: the parent's own judgement of a roaming tunnel peer, a peer of a
 * [trust NAME] issuer with no entry in this hub's registry (docs/pki.md,
 * "Roaming tunnel peers"). The session process may be compromised, so the
 * parent takes nothing from it but the certificate: it checks that the
 * certificate is signed by that issuer's CA (root's config), is valid now,
 * names the tunnel role and the peer, and is not listed by the issuer's CRL
 * (the file the session keeps, whose signature the parent checks, fresh per
 * max-stale and nextUpdate, never older than one seen before); and that
 * every route asked for is a network of the certificate inside [trust NAME]
 * networks.
 */
#ifndef MTLSGW_ROAM_H
#define MTLSGW_ROAM_H

#include <stddef.h>

struct config;
struct ps_tun_up;
struct registry;
struct roam;

int roam_new(const struct config *cfg, struct roam **out);
void roam_free(struct roam *r);
/* 0: u may be set up as a roaming peer; else -EPERM (or -EINVAL for a
 * malformed request) with the reason in err. reg (may be NULL): this hub's
 * registry, which may still refuse (a serial revoked here). */
int roam_check(struct roam *r, const struct ps_tun_up *u, const struct registry *reg,
               char *err, size_t errlen);

#endif
