/*
 * api-invites.h: the management API's invites (api-invites.c) and its
 * history, the audit log and the refusals by minute (api-history.c): the
 * handlers api.c's route table points at (docs/mtlsgwd.md, docs/web.md).
 */
#ifndef MTLSGW_API_INVITES_H
#define MTLSGW_API_INVITES_H

#include "api.h"

/* GET /api/v1/invites: every invite, as `mtlsgw invites --json`. */
api_handler api_get_invites;
/* POST /api/v1/invites {"name", "role", "networks", "ttl"}: 201 with the
 * invite, its code, the join line and the join line's QR code (SVG). */
api_handler api_post_invite;
/* DELETE /api/v1/invites/NAME: withdraw it (404 when there is none). */
api_handler api_delete_invite;

/* GET /api/v1/audit?limit=N: the pki dir's audit log, newest first, at
 * most N (1-500, default 100) lines read from the file's last 256 KiB. */
api_handler api_get_audit;
/* GET /api/v1/refusals: handshake refusals by reason, a count a minute
 * over the last hour (refusals.h). */
api_handler api_get_refusals;

#endif
