#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

/*
 * AEAD only, forward secrecy only, no renegotiation (refused when asked, see
 * conn.c), no compression (GnuTLS has none). TLS 1.2 only when configured.
 */
#define PRIO_13 "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:%SERVER_PRECEDENCE"
#define PRIO_12                                                                                   \
    "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:"         \
    "+AES-128-GCM:+CHACHA20-POLY1305:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-MAC-ALL:+AEAD:"             \
    "%SERVER_PRECEDENCE"

struct tls_server {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    gnutls_datum_t ticket_key;
    char *alpn;
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
    if (srv->prio)
        gnutls_priority_deinit(srv->prio);
    if (srv->ticket_key.data) {
        gnutls_memset(srv->ticket_key.data, 0, srv->ticket_key.size);
        gnutls_free(srv->ticket_key.data);
    }
    free(srv->alpn);
    free(srv);
}

int tls_server_new(const struct tls_server_opts *o, struct tls_server **out, char *err,
                   size_t errlen)
{
    struct tls_server *srv = calloc(1, sizeof(*srv));
    gnutls_x509_crt_t *certs = NULL;
    gnutls_pcert_st *pcerts = NULL;
    unsigned n = 0, n_pcerts = 0;
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    const char *errpos = NULL;
    int rc;

    if (!srv)
        return -ENOMEM;
    rc = fs_read_file(o->cert_path, 1024 * 1024, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read certificate %s: %s", o->cert_path, strerror(-rc));
        goto fail;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    rc = gnutls_x509_crt_list_import2(&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate", o->cert_path);
        rc = -EBADMSG;
        goto fail;
    }
    if (gnutls_certificate_allocate_credentials(&srv->cred) < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    /* The credentials take the array and the key and free them (so the array
     * comes from gnutls_malloc). */
    pcerts = gnutls_calloc(n, sizeof(*pcerts));
    if (!pcerts) {
        rc = -ENOMEM;
        goto fail;
    }
    n_pcerts = n;
    rc = gnutls_pcert_import_x509_list(pcerts, certs, &n_pcerts, 0);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", o->cert_path, gnutls_strerror(rc));
        rc = -EBADMSG;
        goto fail;
    }
    /* The key must match the certificate: GnuTLS checks and says so. */
    rc = gnutls_certificate_set_key(srv->cred, NULL, 0, pcerts, (int)n_pcerts, o->key);
    if (rc < 0) {
        snprintf(err, errlen, "server key and certificate %s do not go together: %s",
                 o->cert_path, gnutls_strerror(rc));
        rc = -EINVAL;
        goto fail;
    }
    pcerts = NULL;
    if (o->n_cas) {
        rc = gnutls_certificate_set_x509_trust(srv->cred, o->cas, (int)o->n_cas);
        if (rc < 0) {
            snprintf(err, errlen, "cannot use the CA certificate: %s", gnutls_strerror(rc));
            rc = -EINVAL;
            goto fail;
        }
    }
    gnutls_certificate_set_verify_function(srv->cred, o->verify ? o->verify : verify_refuse);
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
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    free(text);
    *out = srv;
    return 0;
fail:
    if (pcerts) {
        for (unsigned i = 0; i < n_pcerts; i++)
            gnutls_pcert_deinit(&pcerts[i]);
        gnutls_free(pcerts);
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    free(text);
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
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
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
    const gnutls_datum_t *raw;
    unsigned count = 0;
    gnutls_x509_crt_t *c;

    *chain = NULL;
    *n = 0;
    raw = gnutls_certificate_get_peers(s, &count);
    if (!raw || count == 0)
        return 0;
    c = calloc(count, sizeof(*c));
    if (!c)
        return -ENOMEM;
    for (unsigned i = 0; i < count; i++) {
        if (gnutls_x509_crt_init(&c[i]) < 0 ||
            gnutls_x509_crt_import(c[i], &raw[i], GNUTLS_X509_FMT_DER) < 0) {
            for (unsigned j = 0; j <= i; j++)
                if (c[j])
                    gnutls_x509_crt_deinit(c[j]);
            free(c);
            return -EBADMSG;
        }
    }
    *chain = c;
    *n = count;
    return 0;
}

void tls_describe(gnutls_session_t s, char *buf, size_t len)
{
    const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
    const char *c = gnutls_cipher_get_name(gnutls_cipher_get(s));

    snprintf(buf, len, "%s/%s%s", v ? v : "?", c ? c : "?",
             gnutls_session_is_resumed(s) ? " resumed" : "");
}
