#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <stdbool.h>

#include "fsutil.h"
#include "verify.h"

/*
 * AEAD only, forward secrecy only, no renegotiation (refused when asked, see
 * conn.c), no compression (GnuTLS has none). TLS 1.2 only when configured.
 */
#define PRIO_13 "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:%SERVER_PRECEDENCE"
#define PRIO_12                                                                                   \
    "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:"         \
    "+AES-128-GCM:+CHACHA20-POLY1305:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-MAC-ALL:+AEAD:"             \
    "%SERVER_PRECEDENCE"

/* Credentials replaced by tls_server_set_cert(): open sessions still point
 * at them, so they live as long as the server. */
struct retired_cred {
    gnutls_certificate_credentials_t cred;
    struct retired_cred *next;
};

struct tls_server {
    bool cert_optional;
    gnutls_certificate_credentials_t cred;
    struct retired_cred *retired;
    gnutls_x509_crt_t *cas; /* copies, for credentials made again */
    size_t n_cas;
    int (*verify)(gnutls_session_t session);
    gnutls_priority_t prio;
    gnutls_datum_t ticket_key;
    char *alpn;
    char *chain_path; /* intermediates appended to a cert file that lacks them */
};

/* Without a callback every certificate would pass: refuse instead. */
static int verify_refuse(gnutls_session_t s)
{
    (void)s;
    return GNUTLS_E_CERTIFICATE_ERROR;
}

void tls_server_free(struct tls_server *srv)
{
    if (!srv)
        return;
    if (srv->cred)
        gnutls_certificate_free_credentials(srv->cred);
    while (srv->retired) {
        struct retired_cred *r = srv->retired;
        srv->retired = r->next;
        gnutls_certificate_free_credentials(r->cred);
        free(r);
    }
    for (size_t i = 0; i < srv->n_cas; i++)
        gnutls_x509_crt_deinit(srv->cas[i]);
    free(srv->cas);
    if (srv->prio)
        gnutls_priority_deinit(srv->prio);
    if (srv->ticket_key.data) {
        gnutls_memset(srv->ticket_key.data, 0, srv->ticket_key.size);
        gnutls_free(srv->ticket_key.data);
    }
    free(srv->alpn);
    free(srv->chain_path);
    free(srv);
}

/*
 * The issuers of the last certificate of certs[0..*n) found in chain_path,
 * appended in order up to the root (not included): a gateway certificate
 * written alone (a renewal, an older file) is still sent with the
 * intermediates peers need to reach the root they trust (docs/pki.md).
 * Best effort: without the file or memory, the list stays as it was.
 */
static void append_chain(gnutls_x509_crt_t **certs, unsigned *n, const char *chain_path)
{
    gnutls_x509_crt_t *chain = NULL, *grown;
    unsigned n_chain = 0;
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    bool added = true;

    if (!chain_path || fs_read_file(chain_path, 1024 * 1024, &text, &len) < 0)
        return;
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_list_import2(&chain, &n_chain, &d, GNUTLS_X509_FMT_PEM, 0) < 0)
        n_chain = 0;
    while (added) {
        gnutls_x509_crt_t last = (*certs)[*n - 1];
        added = false;
        if (gnutls_x509_crt_check_issuer(last, last))
            break;
        for (unsigned i = 0; i < n_chain && !added; i++) {
            bool have = false;
            if (!chain[i] || !gnutls_x509_crt_check_issuer(last, chain[i]) ||
                gnutls_x509_crt_check_issuer(chain[i], chain[i]))
                continue;
            for (unsigned k = 0; k < *n; k++)
                have = have || gnutls_x509_crt_equals((*certs)[k], chain[i]);
            if (have || !(grown = gnutls_realloc(*certs, (*n + 1) * sizeof(**certs))))
                continue;
            *certs = grown;
            (*certs)[(*n)++] = chain[i];
            chain[i] = NULL;
            added = true;
        }
    }
    for (unsigned i = 0; i < n_chain; i++)
        if (chain[i])
            gnutls_x509_crt_deinit(chain[i]);
    gnutls_free(chain);
    free(text);
}

/* Certificate chain from a file plus a key, into cred (which takes both). */
static int set_chain_and_key(gnutls_certificate_credentials_t cred, const char *cert_path,
                             const char *chain_path, gnutls_privkey_t key, char *err,
                             size_t errlen)
{
    gnutls_x509_crt_t *certs = NULL;
    gnutls_pcert_st *pcerts = NULL;
    unsigned n = 0, n_pcerts = 0;
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    int rc;

    rc = fs_read_file(cert_path, 1024 * 1024, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read certificate %s: %s", cert_path, fs_strerror(rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    rc = gnutls_x509_crt_list_import2(&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate", cert_path);
        rc = -EBADMSG;
        goto out;
    }
    append_chain(&certs, &n, chain_path);
    /* The credentials take the array and the key and free them (so the array
     * comes from gnutls_malloc). */
    pcerts = gnutls_calloc(n, sizeof(*pcerts));
    if (!pcerts) {
        rc = -ENOMEM;
        goto out;
    }
    n_pcerts = n;
    rc = gnutls_pcert_import_x509_list(pcerts, certs, &n_pcerts, 0);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", cert_path, gnutls_strerror(rc));
        rc = -EBADMSG;
        n_pcerts = 0;
        goto out;
    }
    /* The key must match the certificate: GnuTLS checks and says so. */
    rc = gnutls_certificate_set_key(cred, NULL, 0, pcerts, (int)n_pcerts, key);
    if (rc < 0) {
        snprintf(err, errlen, "key and certificate %s do not go together: %s", cert_path,
                 gnutls_strerror(rc));
        rc = -EINVAL;
        goto out;
    }
    pcerts = NULL;
    rc = 0;
out:
    if (pcerts) {
        for (unsigned i = 0; i < n_pcerts; i++)
            gnutls_pcert_deinit(&pcerts[i]);
        gnutls_free(pcerts);
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    free(text);
    return rc;
}

static int crt_dup(gnutls_x509_crt_t src, gnutls_x509_crt_t *out)
{
    gnutls_datum_t der = {0};
    int rc = -ENOMEM;

    if (gnutls_x509_crt_export2(src, GNUTLS_X509_FMT_DER, &der) < 0)
        return -EINVAL;
    if (gnutls_x509_crt_init(out) == 0) {
        rc = gnutls_x509_crt_import(*out, &der, GNUTLS_X509_FMT_DER) < 0 ? -EINVAL : 0;
        if (rc < 0)
            gnutls_x509_crt_deinit(*out);
    }
    gnutls_free(der.data);
    return rc;
}

/* Credentials for srv with this chain and key. The key is theirs on
 * success, still the caller's on failure (the chain goes in last). */
static int server_cred(const struct tls_server *srv, const char *cert_path,
                       gnutls_privkey_t key, gnutls_certificate_credentials_t *out, char *err,
                       size_t errlen)
{
    gnutls_certificate_credentials_t cred = NULL;
    int rc;

    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return -ENOMEM;
    if (srv->n_cas) {
        rc = gnutls_certificate_set_x509_trust(cred, srv->cas, (int)srv->n_cas);
        if (rc < 0) {
            snprintf(err, errlen, "cannot use the CA certificate: %s", gnutls_strerror(rc));
            rc = -EINVAL;
            goto fail;
        }
    }
    gnutls_certificate_set_verify_function(cred, srv->verify ? srv->verify : verify_refuse);
    rc = set_chain_and_key(cred, cert_path, srv->chain_path, key, err, errlen);
    if (rc < 0)
        goto fail;
    *out = cred;
    return 0;
fail:
    gnutls_certificate_free_credentials(cred);
    return rc;
}

int tls_server_set_cert(struct tls_server *srv, const char *cert_path, gnutls_privkey_t key,
                        char *err, size_t errlen)
{
    gnutls_certificate_credentials_t cred = NULL;
    struct retired_cred *r = calloc(1, sizeof(*r));
    int rc;

    if (!r) {
        gnutls_privkey_deinit(key);
        return -ENOMEM;
    }
    rc = server_cred(srv, cert_path, key, &cred, err, errlen);
    if (rc < 0) {
        gnutls_privkey_deinit(key);
        free(r);
        return rc;
    }
    r->cred = srv->cred;
    r->next = srv->retired;
    srv->retired = r;
    srv->cred = cred;
    return 0;
}

int tls_server_new(const struct tls_server_opts *o, struct tls_server **out, char *err,
                   size_t errlen)
{
    struct tls_server *srv = calloc(1, sizeof(*srv));
    const char *errpos = NULL;
    int rc;

    if (!srv)
        return -ENOMEM;
    srv->cert_optional = o->cert_optional;
    srv->verify = o->verify;
    if (o->n_cas && !(srv->cas = calloc(o->n_cas, sizeof(*srv->cas)))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < o->n_cas; i++) {
        if ((rc = crt_dup(o->cas[i], &srv->cas[i])) < 0)
            goto fail;
        srv->n_cas++;
    }
    if (o->chain_path && !(srv->chain_path = strdup(o->chain_path))) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = server_cred(srv, o->cert_path, o->key, &srv->cred, err, errlen);
    if (rc < 0)
        goto fail;
    rc = gnutls_priority_init2(&srv->prio, o->tls_min == 12 ? PRIO_12 : PRIO_13, &errpos,
                               GNUTLS_PRIORITY_INIT_DEF_APPEND);
    if (rc < 0) {
        snprintf(err, errlen, "TLS priority string rejected at '%s': %s",
                 errpos ? errpos : "?", gnutls_strerror(rc));
        rc = -EINVAL;
        goto fail;
    }
    if (gnutls_session_ticket_key_generate(&srv->ticket_key) < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    if (o->alpn && !(srv->alpn = strdup(o->alpn))) {
        rc = -ENOMEM;
        goto fail;
    }
    *out = srv;
    return 0;
fail:
    tls_server_free(srv);
    return rc < 0 ? rc : -EINVAL;
}

int tls_session_new(struct tls_server *srv, int fd, void *ptr, gnutls_session_t *out)
{
    gnutls_session_t s = NULL;
    int rc;

    rc = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc < 0)
        return -ENOMEM;
    if (gnutls_priority_set(s, srv->prio) < 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, srv->cred) < 0 ||
        gnutls_session_ticket_enable_server(s, &srv->ticket_key) < 0) {
        gnutls_deinit(s);
        return -EINVAL;
    }
    gnutls_certificate_server_set_request(s, srv->cert_optional ? GNUTLS_CERT_REQUEST
                                                                : GNUTLS_CERT_REQUIRE);
    if (srv->alpn) {
        gnutls_datum_t p = {(unsigned char *)srv->alpn, (unsigned)strlen(srv->alpn)};
        gnutls_alpn_set_protocols(s, &p, 1, GNUTLS_ALPN_MANDATORY);
    }
    gnutls_transport_set_int(s, fd);
    gnutls_session_set_ptr(s, ptr);
    *out = s;
    return 0;
}

int tls_peer_chain(gnutls_session_t s, gnutls_x509_crt_t **chain, unsigned *n)
{
    unsigned count = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &count);
    int rc;

    *n = 0;
    rc = verify_import_chain(raw, raw ? count : 0, chain);
    if (rc == 0)
        *n = raw ? count : 0;
    return rc;
}

void tls_describe(gnutls_session_t s, char *buf, size_t len)
{
    const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
    const char *c = gnutls_cipher_get_name(gnutls_cipher_get(s));

    snprintf(buf, len, "%s/%s%s", v ? v : "?", c ? c : "?",
             gnutls_session_is_resumed(s) ? " resumed" : "");
}

/* ---- client ------------------------------------------------------------------ */

struct tls_client {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    char *alpn;
};

void tls_client_free(struct tls_client *cli)
{
    if (!cli)
        return;
    if (cli->cred)
        gnutls_certificate_free_credentials(cli->cred);
    if (cli->prio)
        gnutls_priority_deinit(cli->prio);
    free(cli->alpn);
    free(cli);
}

int tls_client_new(const struct tls_client_opts *o, struct tls_client **out, char *err,
                   size_t errlen)
{
    struct tls_client *cli = calloc(1, sizeof(*cli));
    const char *errpos = NULL;
    int rc;

    if (!cli)
        return -ENOMEM;
    if (gnutls_certificate_allocate_credentials(&cli->cred) < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = set_chain_and_key(cli->cred, o->cert_path, NULL, o->key, err, errlen);
    if (rc < 0)
        goto fail;
    rc = gnutls_certificate_set_x509_trust_file(cli->cred, o->ca_path, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
        snprintf(err, errlen, "%s holds no CA certificate", o->ca_path);
        rc = -EBADMSG;
        goto fail;
    }
    rc = gnutls_priority_init2(&cli->prio, o->tls_min == 12 ? PRIO_12 : PRIO_13, &errpos,
                               GNUTLS_PRIORITY_INIT_DEF_APPEND);
    if (rc < 0) {
        snprintf(err, errlen, "TLS priority string rejected: %s", gnutls_strerror(rc));
        rc = -EINVAL;
        goto fail;
    }
    if (o->alpn && !(cli->alpn = strdup(o->alpn))) {
        rc = -ENOMEM;
        goto fail;
    }
    *out = cli;
    return 0;
fail:
    tls_client_free(cli);
    return rc;
}

int tls_client_session(struct tls_client *cli, int fd, const char *server_name,
                       gnutls_session_t *out)
{
    gnutls_session_t s = NULL;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, server_name, ip) == 1 ||
                 inet_pton(AF_INET6, server_name, ip) == 1;

    if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
        return -ENOMEM;
    if (gnutls_priority_set(s, cli->prio) < 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cli->cred) < 0 ||
        (!is_ip && gnutls_server_name_set(s, GNUTLS_NAME_DNS, server_name,
                                          strlen(server_name)) < 0)) {
        gnutls_deinit(s);
        return -EINVAL;
    }
    /* Chain and name are checked by GnuTLS during the handshake. */
    gnutls_session_set_verify_cert(s, server_name, 0);
    if (cli->alpn) {
        gnutls_datum_t p = {(unsigned char *)cli->alpn, (unsigned)strlen(cli->alpn)};
        gnutls_alpn_set_protocols(s, &p, 1, GNUTLS_ALPN_MANDATORY);
    }
    gnutls_transport_set_int(s, fd);
    *out = s;
    return 0;
}
