/*
 * verify.h: the one function that decides whether a peer is trusted.
 *
 * Every listener calls it during the handshake, and `mtlsgw explain` calls it
 * without a connection, so the console says exactly what a listener would.
 */
#ifndef MTLSGW_VERIFY_H
#define MTLSGW_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/x509.h>

struct registry;
struct peer;

enum verdict_code {
    VERDICT_OK = 0,
    VERDICT_NO_CERT,
    VERDICT_BAD_CERT,
    VERDICT_UNKNOWN_ISSUER,
    VERDICT_BAD_SIGNATURE,
    VERDICT_EXPIRED,
    VERDICT_NOT_YET_VALID,
    VERDICT_NO_CLIENTAUTH,
    VERDICT_REVOKED,
    VERDICT_NOT_ENROLLED,
    VERDICT_ROLE_MISMATCH,
    VERDICT_ROLE_NOT_ALLOWED,
    /* A sibling issuer's peer while that issuer's CRL is stale past
     * max-stale (or was never fetched): fail closed. */
    VERDICT_ISSUER_STALE,
};

/* A bit per enum peer_role. */
#define VERIFY_ROLE(r) (1u << (r))

/*
 * A sibling issuer under the same root ([trust NAME], docs/pki.md
 * "Revocation across hubs"): its CA certificate, what its latest CRL
 * revokes, and the roles it may vouch for here. Its peers need no entry
 * in our registry; one there (same serial) still decides: revoked there
 * is refused, and its role must agree.
 */
struct trust_issuer {
    char name[32];
    gnutls_x509_crt_t ca;
    bool fresh;           /* false: no CRL fetched within max-stale: refuse its peers */
    bool ca_revoked;      /* its CA is on the root's CRL: refuse its peers */
    char (*revoked)[64];  /* its CRL's serials (verify_serial_hex), sorted */
    size_t n_revoked;
    unsigned roles;       /* VERIFY_ROLE() bits: the most one of its peers gets */
};

struct trust {
    gnutls_x509_crt_t *cas; /* trust anchors (the root, or a self-signed CA) */
    size_t n_cas;
    /* Intermediates this gateway knows (its chain.pem): a peer that sends
     * only its own certificate still has its path built through them. Never
     * anchors: each is verified up to cas, path lengths included. */
    gnutls_x509_crt_t *chain;
    size_t n_chain;
    gnutls_x509_crl_t crl;  /* may be NULL */
    gnutls_x509_crl_t crl_old; /* the old CA's during a rollover, or NULL */
    const struct registry *reg;
    const struct trust_issuer *issuers; /* sibling issuers, may be none */
    size_t n_issuers;
};

struct verdict {
    enum verdict_code code;
    const struct peer *peer; /* the registry entry when known */
    /* Who vouched: "" for our own CA, else the [trust NAME] (whose peer
     * may have no registry entry: then name and role come from its
     * certificate). */
    char issuer[32];
    char name[64];
    int role;
    time_t not_after;
    char serial[64];         /* lower-case hex */
    char subject[256];
    char reason[320];        /* for logs and explain; empty when OK */
};

/* The i-th CA of t: t->cas, then t->chain; NULL past the end. */
gnutls_x509_crt_t verify_ca_at(const struct trust *t, int i);

/* Short stable name for metrics and logs: "ok", "unknown-issuer", ... */
const char *verdict_name(enum verdict_code code);

/*
 * chain[0] is the peer's certificate. allowed_roles: VERIFY_ROLE() bits of
 * the listener. Returns 0 when the verdict could be formed (v->code says
 * what), negative on internal errors.
 */
int verify_peer(const struct trust *t, const gnutls_x509_crt_t *chain, size_t n, time_t now,
                unsigned allowed_roles, struct verdict *v);

/*
 * What the checks after the chain read of a certificate, taken once
 * (verify_facts), so that a resumption of a known peer needs no parsing
 * (trustdb_verify_resumed keeps them). crl_revoked is for t->crl.
 */
struct cert_facts {
    char serial[64];
    char subject[256];
    char issuer_dn[256];
    time_t not_before, not_after;
    bool client_auth;
    bool crl_revoked;
    int role; /* verify_cert_role() */
    /* The CA that issued it (-1: none does; an index into t->cas, then
     * t->chain: see verify_ca_at), and the period in
     * which every CA on its path in t->cas is valid: a certificate is no
     * better than its issuer (RFC 5280 6.1.3: each certificate in the path
     * must be valid at the time in question). */
    int ca;
    time_t ca_not_before, ca_not_after;
    /* Issued by t->issuers[issuer] instead (-1: not a sibling's); then
     * crl_revoked is for that issuer's CRL, and cn its subject's CN. */
    int issuer;
    char cn[64];
};

/* Whether CA certificate ca allows no CA below it (basicConstraints
 * pathlen:0): a [trust] CA without it can sign sub-CAs, whose leaves are
 * refused as of an unknown issuer, but it should not be able to. */
bool verify_ca_pathlen0(gnutls_x509_crt_t ca);

/* Whether serial (verify_serial_hex) is in a sorted list of serials. */
bool verify_serial_listed(char (*const list)[64], size_t n, const char *serial);

void verify_facts(const struct trust *t, gnutls_x509_crt_t crt, struct cert_facts *f);

/* verify_peer, also giving the facts it took of chain[0] (set when a
 * verdict was formed and there was a certificate). */
int verify_peer_facts(const struct trust *t, const gnutls_x509_crt_t *chain, size_t n,
                      time_t now, unsigned allowed_roles, struct verdict *v,
                      struct cert_facts *f);

/*
 * Everything but the chain and the signatures, from facts taken with the same
 * trust: validity period, clientAuth, CRL, registry (revoked, superseded,
 * removed) and role. It is the verdict on a resumed TLS session, whose chain
 * passed verify_peer in the full handshake that issued the ticket (tickets
 * are encrypted and authenticated with the server's own key, so no one else
 * can make one), and what verify_peer decides once the chain of those facts
 * has verified. f NULL: no client certificate.
 */
int verify_by_facts(const struct trust *t, const struct cert_facts *f, time_t now,
                    unsigned allowed_roles, struct verdict *v);

/* DER certificates into a chain for verify_peer (freed with
 * verify_free_chain); -EBADMSG when one does not parse. */
int verify_import_chain(const gnutls_datum_t *raw, unsigned n, gnutls_x509_crt_t **chain);
void verify_free_chain(gnutls_x509_crt_t *chain, unsigned n);

/* Serial as lower-case hex, leading zero octets dropped (the registry key). */
void verify_serial_hex(gnutls_x509_crt_t crt, char *out, size_t outlen);
/* A CRL's cRLNumber (0 when it has none); one longer than 8 octets reads
 * as UINT64_MAX (RFC 5280 allows 20): for display only, never to compare
 * two CRLs (verify_crl_num). */
uint64_t verify_crl_number(gnutls_x509_crl_t crl);

/* A cRLNumber as a big integer (RFC 5280 5.2.3: up to 20 octets): its
 * big-endian octets with leading zero octets dropped; len 0 when the CRL
 * has none (or one longer than 32 octets, which no conforming CA makes). */
struct verify_crl_num {
    unsigned char b[32];
    size_t len;
};
void verify_crl_num(gnutls_x509_crl_t crl, struct verify_crl_num *out);
/* <0, 0, >0 as a is below, equal to or above b (length, then octets). */
int verify_crl_num_cmp(const struct verify_crl_num *a, const struct verify_crl_num *b);

/*
 * Freshness of a sibling issuer's CRL, from its signed times alone (docs/
 * pki.md "Revocation across hubs"): thisUpdate within max_stale of now and
 * at most VERIFY_CRL_SKEW ahead of it, and a nextUpdate that has not
 * passed (a CRL without one is never fresh). A path attacker who answers
 * 304 or replays the CRL held can therefore hold a revocation back for
 * max_stale at most, whatever the fetches did. The fetcher, the parent
 * (roaming tunnels) and explain all judge with it. why (may be NULL) says
 * what is not fresh.
 */
#define VERIFY_CRL_SKEW 300
bool verify_crl_fresh(time_t this_update, time_t next_update, unsigned max_stale, time_t now,
                      char *why, size_t whylen);
/* Whether crl carries ca's valid signature, its times aside: GnuTLS flags a
 * thisUpdate ahead of this clock or a lapsed nextUpdate as INVALID with
 * ISSUED_IN_FUTURE / SUPERSEDED; those are verify_crl_fresh's to judge (with
 * its VERIFY_CRL_SKEW), not a bad signature. */
bool verify_crl_signed_by(gnutls_x509_crl_t crl, gnutls_x509_crt_t ca);
/*
 * Before GnuTLS imports a CRL (its import is quadratic in the entries: a
 * 2 MiB CRL of ~95,000 entries costs a minute, and it runs before any
 * signature check): data (DER or PEM) is walked as DER (CertificateList:
 * tbsCertList, signatureAlgorithm, signatureValue) and ca's signature is
 * checked over the raw tbsCertList with gnutls_pubkey_verify_data2. So a
 * forged CRL costs a signature check, whatever its size. A signature
 * algorithm GnuTLS cannot name from its OID alone (RSA-PSS) is not checked
 * here: such a CRL is taken on to import only with at most
 * VERIFY_CRL_MAX_UNCHECKED entries and VERIFY_CRL_MAX_UNCHECKED_BYTES; any
 * other algorithm GnuTLS cannot name is refused. The outer element must be
 * the whole input and its parts must fill it (import it with
 * verify_crl_import). 0, or -EBADMSG (not one CRL), -EPERM (not signed by
 * ca), -EFBIG (too big to import unchecked), -ENOTSUP (unknown algorithm).
 */
#define VERIFY_CRL_MAX_UNCHECKED 10000
#define VERIFY_CRL_MAX_UNCHECKED_BYTES (64u * 1024)
int verify_crl_precheck(const void *data, size_t len, gnutls_x509_crt_t ca);
/* Import data into crl the way verify_crl_precheck read it: PEM when it
 * starts with a PEM header, else DER (never "DER, else the first PEM block
 * anywhere in it"). 0 or -EBADMSG. */
int verify_crl_import(gnutls_x509_crl_t crl, const void *data, size_t len);
/* The root's CRL at a hub (docs/pki.md "The root's CRL at the hubs"): the
 * first http:// CRL distribution point of crt (malloc'ed; NULL: none), the
 * certificate among anchors[0..n) that issued crt (its signature checked;
 * NULL: none), and whether crl lists crt's serial. */
char *verify_crl_dp_http(gnutls_x509_crt_t crt);
/* Whether ca's key signed crt (and ca's subject is crt's issuer): how a
 * certificate's issuer is chosen, never by name alone (docs/pki.md). */
bool verify_signed_by(gnutls_x509_crt_t crt, gnutls_x509_crt_t ca);
/* Whether a certificate in PEM file a has the subject of one in PEM file
 * b (that subject in dn); false when either cannot be read. A [trust] CA
 * named like this gateway's own CA or another [trust] CA is refused. */
bool verify_files_share_subject(const char *a, const char *b, char *dn, size_t dnlen);
gnutls_x509_crt_t verify_issuer_among(gnutls_x509_crt_t crt, gnutls_x509_crt_t *anchors,
                                      size_t n);
bool verify_crl_lists(gnutls_x509_crl_t crl, gnutls_x509_crt_t crt);

/* A fresh CRL already older than max_stale/2 (when fetched, or now): its issuer
 * re-signs less often than this hub's max-stale needs ([crl] resign), so
 * one missed re-sign or fetch makes it stale. The advice, into out. */
bool verify_crl_aging(time_t this_update, unsigned max_stale, time_t now, char *out,
                      size_t outlen);
/* The same for a serial's raw octets (a CRL entry's). */
void verify_serial_bytes_hex(const unsigned char *s, size_t len, char *out, size_t outlen);

/* The role named by a certificate's URI SAN urn:mtlsgw:role:ROLE, or -1. */
int verify_cert_role(gnutls_x509_crt_t crt);

/* A tunnel peer's network in its certificate: a URI SAN of this prefix and
 * a CIDR, written by the issuing CA from its registry (enroll --network), so
 * that a hub trusting that CA ([trust NAME] networks =) knows what the
 * issuer vouched for without an entry of its own. */
#define VERIFY_NETWORK_URI "urn:mtlsgw:network:"
/* Those networks, canonical CIDR, into out[0..max); returns how many (a
 * URI that is not a prefix is skipped). */
size_t verify_cert_networks(gnutls_x509_crt_t crt, char (*out)[64], size_t max);

#endif
