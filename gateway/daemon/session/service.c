/*
 * service.c: the listener kinds (service.h) and what each does once a
 * session is open.
 */
#include "service.h"

#include "api.h"
#include "crl-http.h"
#include "daemon.h"
#include "fault.h"
#include "est.h"
#include "gate.h"

static bool management_open(struct conn *c)
{
    /* The window between the verdict and the opening, where a revocation
     * may land (tests/adversarial/gate-revoke.sh). */
    fault_point("gate-open");
    gate_open(c);
    return false;
}

static bool tunnel_open(struct conn *c)
{
    tunnel_start_hub(c);
    return true;
}

const struct service service_management = {
    .name = "management",
    .verify = SVC_CERT_REQUIRED,
    .on_open = management_open,
    .is_slow = api_is_slow,
    .handle = api_handle,
    .errors = SVC_ERRORS_JSON,
};

const struct service service_tunnel = {
    .name = "tunnel",
    .verify = SVC_CERT_REQUIRED,
    .on_open = tunnel_open,
    .is_slow = api_is_slow,
    .handle = api_handle,
    .errors = SVC_ERRORS_JSON,
};

const struct service service_enroll = {
    .name = "enroll",
    .verify = SVC_CERT_FOR_HANDLER,
    .on_open = NULL,
    .is_slow = est_is_slow,
    .handle = est_handle,
    .errors = SVC_ERRORS_TEXT,
};

const struct service service_crl = {
    .name = "crl",
    .verify = SVC_PLAIN,
    .on_open = NULL,
    .is_slow = crl_http_is_slow,
    .handle = crl_http_handle,
    .errors = SVC_ERRORS_TEXT,
};

const struct service service_uplink = {
    .name = "uplink",
    .verify = SVC_CERT_REQUIRED,
    .on_open = NULL,
    .is_slow = api_is_slow,
    .handle = api_handle,
    .errors = SVC_ERRORS_JSON,
};
