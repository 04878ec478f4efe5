/*
 * dchan.c: the UDP data channel's record layer (dchan.h). The byte layout,
 * the key schedule and the rekey are specified in docs/tunnel-protocol.md,
 * "UDP data channel"; this file is that text in code.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "dchan.h"

#define WORDS (DCHAN_WINDOW_BITS / 64)

struct dchan_tx {
    gnutls_aead_cipher_hd_t aead; /* NULL: none */
    uint32_t epoch;
    unsigned char iv[DCHAN_IV];
    _Atomic uint64_t ctr; /* the next counter to seal with */
};

struct dchan_rx {
    gnutls_aead_cipher_hd_t aead; /* NULL: slot empty */
    uint32_t epoch;
    unsigned char iv[DCHAN_IV];
    struct dchan_window win;
};

struct dchan {
    enum dchan_role role;
    uint32_t id;
    gnutls_cipher_algorithm_t cipher;
    /* send half */
    struct dchan_tx tx;
    /* receive half; next is written by dchan_install, read by dchan_switch */
    struct dchan_tx next;
    struct dchan_rx rx[2];
    int newest;                 /* rx[newest] holds the newest epoch */
    _Atomic bool newest_opened; /* rx[newest] has opened a record (read lock-free) */
    uint64_t drop_at;           /* when the older rx slot goes; 0: not scheduled */
    _Atomic uint64_t rx_top;    /* rx[newest].win.top, for dchan_wants_rekey */
};

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* RFC 8446 section 5.3: the counter, left-padded to the IV's length,
 * XORed with the IV. */
static void make_nonce(unsigned char nonce[DCHAN_IV], const unsigned char iv[DCHAN_IV],
                       const unsigned char ctr_be[8])
{
    memcpy(nonce, iv, DCHAN_IV);
    for (int i = 0; i < 8; i++)
        nonce[DCHAN_IV - 8 + i] ^= ctr_be[i];
}

/* Who may send what: probes go up, replies come down. */
static bool role_sends(enum dchan_role role, unsigned type)
{
    switch (type) {
    case DCHAN_DATA:
    case DCHAN_KEEPALIVE:
    case DCHAN_PARITY:
    case DCHAN_LOSS:
        return true;
    case DCHAN_PROBE:
        return role == DCHAN_SPOKE;
    case DCHAN_PROBE_REPLY:
        return role == DCHAN_HUB;
    default:
        return false;
    }
}

static bool length_ok(unsigned type, size_t len)
{
    switch (type) {
    case DCHAN_KEEPALIVE:
        return len == 0;
    case DCHAN_PROBE:
    case DCHAN_PROBE_REPLY:
        return len >= DCHAN_PROBE_ID && len <= DCHAN_PAYLOAD_MAX;
    case DCHAN_PARITY: /* its 4-byte header and at least one record */
        return len >= 4 + DCHAN_OVERHEAD + 1 && len <= DCHAN_PAYLOAD_MAX;
    case DCHAN_LOSS:
        return len == DCHAN_LOSS_LEN;
    default:
        return len >= 1 && len <= DCHAN_PAYLOAD_MAX;
    }
}

void dchan_window_init(struct dchan_window *w)
{
    memset(w, 0, sizeof(*w));
}

int dchan_window_check(const struct dchan_window *w, uint64_t ctr)
{
    if (ctr >= w->top)
        return 0;
    /* top - 1 is the highest accepted; the ring still holds every bit
     * down to it - (DCHAN_WINDOW - 1). */
    if (w->top - 1 - ctr >= DCHAN_WINDOW)
        return -ESTALE;
    if (w->bits[(ctr >> 6) % WORDS] & (UINT64_C(1) << (ctr & 63)))
        return -EALREADY;
    return 0;
}

void dchan_window_update(struct dchan_window *w, uint64_t ctr)
{
    if (ctr >= w->top) {
        if (w->top > 0) {
            uint64_t cur = (w->top - 1) >> 6, diff = (ctr >> 6) - cur;
            if (diff > WORDS)
                diff = WORDS;
            for (uint64_t i = 1; i <= diff; i++)
                w->bits[(cur + i) % WORDS] = 0;
        }
        w->top = ctr + 1;
    }
    w->bits[(ctr >> 6) % WORDS] |= UINT64_C(1) << (ctr & 63);
}

int dchan_keys_from_session(gnutls_session_t session, enum dchan_role role, uint32_t epoch,
                            struct dchan_keys *keys)
{
    /* Hub to spoke key and IV, then spoke to hub key and IV. */
    unsigned char material[2 * (DCHAN_KEY + DCHAN_IV)], ctx[5], idb[4];
    const unsigned char *h2s = material, *s2h = material + DCHAN_KEY + DCHAN_IV;
    struct dchan_keys k;
    gnutls_protocol_t ver = gnutls_protocol_get_version(session);
    int rc = 0;

    if (role != DCHAN_HUB && role != DCHAN_SPOKE)
        return -EINVAL;
    /* A TLS 1.2 exporter without the extended master secret is not bound
     * to the handshake (RFC 7627, the triple handshake). */
    if (ver != GNUTLS_TLS1_3 &&
        (ver != GNUTLS_TLS1_2 || !gnutls_session_ext_master_secret_status(session)))
        return -ENOTSUP;

    memset(&k, 0, sizeof(k));
    k.epoch = epoch;
    k.role = role;
    k.cipher = gnutls_cipher_get(session) == GNUTLS_CIPHER_CHACHA20_POLY1305
                   ? GNUTLS_CIPHER_CHACHA20_POLY1305
                   : GNUTLS_CIPHER_AES_256_GCM;
    /* Context "K" || epoch (BE32) for the keys, "I" for the channel id:
     * distinct contexts, so distinct exporter outputs. */
    ctx[0] = 'K';
    put32(ctx + 1, epoch);
    if (gnutls_prf_rfc5705(session, strlen(DCHAN_LABEL), DCHAN_LABEL, sizeof(ctx),
                           (const char *)ctx, sizeof(material), (char *)material) < 0) {
        rc = -EIO;
        goto out;
    }
    ctx[0] = 'I';
    if (gnutls_prf_rfc5705(session, strlen(DCHAN_LABEL), DCHAN_LABEL, 1, (const char *)ctx,
                           sizeof(idb), (char *)idb) < 0) {
        rc = -EIO;
        goto out;
    }
    k.id = get32(idb);
    memcpy(k.tx_key, role == DCHAN_HUB ? h2s : s2h, DCHAN_KEY);
    memcpy(k.tx_iv, (role == DCHAN_HUB ? h2s : s2h) + DCHAN_KEY, DCHAN_IV);
    memcpy(k.rx_key, role == DCHAN_HUB ? s2h : h2s, DCHAN_KEY);
    memcpy(k.rx_iv, (role == DCHAN_HUB ? s2h : h2s) + DCHAN_KEY, DCHAN_IV);
    *keys = k;
out:
    gnutls_memset(material, 0, sizeof(material));
    gnutls_memset(&k, 0, sizeof(k));
    return rc;
}

void dchan_keys_wipe(struct dchan_keys *keys)
{
    if (keys)
        gnutls_memset(keys, 0, sizeof(*keys));
}

static int aead_new(gnutls_cipher_algorithm_t cipher, const unsigned char *key,
                    gnutls_aead_cipher_hd_t *out)
{
    gnutls_datum_t d = {(unsigned char *)key, DCHAN_KEY};

    return gnutls_aead_cipher_init(out, cipher, &d) < 0 ? -EIO : 0;
}

static void tx_wipe(struct dchan_tx *t)
{
    if (t->aead)
        gnutls_aead_cipher_deinit(t->aead);
    t->aead = NULL;
    gnutls_memset(t->iv, 0, sizeof(t->iv));
    atomic_store_explicit(&t->ctr, 0, memory_order_relaxed);
    t->epoch = 0;
}

static void rx_wipe(struct dchan_rx *r)
{
    if (r->aead)
        gnutls_aead_cipher_deinit(r->aead);
    r->aead = NULL;
    gnutls_memset(r->iv, 0, sizeof(r->iv));
    dchan_window_init(&r->win);
    r->epoch = 0;
}

/* Fill a tx and an rx from keys; on failure neither holds anything. */
static int load(const struct dchan_keys *k, struct dchan_tx *t, struct dchan_rx *r)
{
    int rc;

    if ((rc = aead_new(k->cipher, k->tx_key, &t->aead)) < 0)
        return rc;
    if ((rc = aead_new(k->cipher, k->rx_key, &r->aead)) < 0) {
        tx_wipe(t);
        return rc;
    }
    t->epoch = r->epoch = k->epoch;
    memcpy(t->iv, k->tx_iv, DCHAN_IV);
    memcpy(r->iv, k->rx_iv, DCHAN_IV);
    atomic_store_explicit(&t->ctr, 0, memory_order_relaxed);
    dchan_window_init(&r->win);
    return 0;
}

static bool keys_ok(const struct dchan_keys *k)
{
    return (k->role == DCHAN_HUB || k->role == DCHAN_SPOKE) &&
           (k->cipher == GNUTLS_CIPHER_AES_256_GCM ||
            k->cipher == GNUTLS_CIPHER_CHACHA20_POLY1305);
}

int dchan_new(const struct dchan_keys *keys, struct dchan **out)
{
    struct dchan *ch;
    int rc;

    if (!keys_ok(keys))
        return -EINVAL;
    if (!(ch = calloc(1, sizeof(*ch))))
        return -ENOMEM;
    ch->role = keys->role;
    ch->id = keys->id;
    ch->cipher = keys->cipher;
    if ((rc = load(keys, &ch->tx, &ch->rx[0])) < 0) {
        free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

void dchan_free(struct dchan *ch)
{
    if (!ch)
        return;
    tx_wipe(&ch->tx);
    tx_wipe(&ch->next);
    rx_wipe(&ch->rx[0]);
    rx_wipe(&ch->rx[1]);
    gnutls_memset(ch, 0, sizeof(*ch));
    free(ch);
}

int dchan_seal(struct dchan *ch, unsigned type, unsigned char *rec, size_t len, size_t cap)
{
    unsigned char nonce[DCHAN_IV];
    giovec_t ad = {rec, DCHAN_HDR}, pt = {rec + DCHAN_HDR, len};
    size_t tag_len = DCHAN_TAG;
    uint64_t ctr;

    if (!role_sends(ch->role, type))
        return -EINVAL;
    if (len > DCHAN_PAYLOAD_MAX)
        return -EMSGSIZE;
    if (!length_ok(type, len) || cap < DCHAN_OVERHEAD + len)
        return -EINVAL;
    ctr = atomic_load_explicit(&ch->tx.ctr, memory_order_relaxed);
    if (ctr >= DCHAN_LIMIT)
        return -EKEYEXPIRED;
    /* Taken before sealing: a failed seal never leaves its nonce for reuse. */
    atomic_store_explicit(&ch->tx.ctr, ctr + 1, memory_order_relaxed);

    rec[0] = (unsigned char)(DCHAN_VERSION << 4 | type);
    rec[1] = 0;
    put16(rec + 2, (uint16_t)ch->tx.epoch);
    put32(rec + 4, ch->id);
    put64(rec + 8, ctr);
    make_nonce(nonce, ch->tx.iv, rec + 8);
    if (gnutls_aead_cipher_encryptv2(ch->tx.aead, nonce, sizeof(nonce), &ad, 1, &pt, 1,
                                     rec + DCHAN_HDR + len, &tag_len) < 0 ||
        tag_len != DCHAN_TAG)
        return -EIO;
    return (int)(DCHAN_OVERHEAD + len);
}

uint16_t dchan_rec_epoch(const unsigned char *rec)
{
    return (uint16_t)(rec[2] << 8 | rec[3]);
}

uint64_t dchan_rec_counter(const unsigned char *rec)
{
    return get64(rec + 8);
}

int dchan_peek_id(const unsigned char *buf, size_t len, uint32_t *id)
{
    unsigned type;

    if (len < DCHAN_OVERHEAD || buf[0] >> 4 != DCHAN_VERSION || buf[1] != 0)
        return -EBADMSG;
    type = buf[0] & 0x0f;
    if (type < DCHAN_DATA || type > DCHAN_LOSS)
        return -EBADMSG;
    *id = get32(buf + 4);
    return 0;
}

int dchan_open(struct dchan *ch, unsigned char *rec, size_t len, unsigned *type)
{
    unsigned char nonce[DCHAN_IV];
    struct dchan_rx *r = NULL;
    uint32_t id;
    uint64_t ctr;
    unsigned t;
    size_t plen;
    int slot, rc;

    /* Everything a forger controls is checked before the one AEAD check. */
    if (dchan_peek_id(rec, len, &id) < 0 || id != ch->id)
        return -EBADMSG;
    t = rec[0] & 0x0f;
    plen = len - DCHAN_OVERHEAD;
    if (!role_sends(ch->role == DCHAN_HUB ? DCHAN_SPOKE : DCHAN_HUB, t) || !length_ok(t, plen))
        return -EBADMSG;
    for (slot = 0; slot < 2; slot++) {
        if (ch->rx[slot].aead && (uint16_t)ch->rx[slot].epoch == (rec[2] << 8 | rec[3])) {
            r = &ch->rx[slot];
            break;
        }
    }
    if (!r)
        return -ENOKEY;
    ctr = get64(rec + 8);
    if (ctr >= DCHAN_LIMIT)
        return -EBADMSG;
    if ((rc = dchan_window_check(&r->win, ctr)) < 0)
        return rc;

    make_nonce(nonce, r->iv, rec + 8);
    {
        giovec_t ad = {rec, DCHAN_HDR}, ct = {rec + DCHAN_HDR, plen};
        if (gnutls_aead_cipher_decryptv2(r->aead, nonce, sizeof(nonce), &ad, 1, &ct, 1,
                                         rec + DCHAN_HDR + plen, DCHAN_TAG) < 0)
            return -EBADMSG;
    }
    dchan_window_update(&r->win, ctr);
    if (slot == ch->newest) {
        atomic_store_explicit(&ch->newest_opened, true, memory_order_relaxed);
        atomic_store_explicit(&ch->rx_top, r->win.top, memory_order_relaxed);
    }
    *type = t;
    return (int)plen;
}

int dchan_install(struct dchan *ch, const struct dchan_keys *keys)
{
    struct dchan_rx *newest = &ch->rx[ch->newest], *slot = &ch->rx[!ch->newest];
    struct dchan_tx t = {0};
    struct dchan_rx r = {0};
    int rc;

    if (!keys_ok(keys) || keys->role != ch->role || keys->id != ch->id ||
        keys->cipher != ch->cipher || keys->epoch != newest->epoch + 1 || keys->epoch == 0 ||
        ch->next.aead)
        return -EINVAL;
    if ((rc = load(keys, &t, &r)) < 0)
        return rc;
    rx_wipe(slot);
    *slot = r;
    ch->next.aead = t.aead;
    ch->next.epoch = t.epoch;
    memcpy(ch->next.iv, t.iv, DCHAN_IV);
    atomic_store_explicit(&ch->next.ctr, 0, memory_order_relaxed);
    gnutls_memset(&t, 0, sizeof(t));
    gnutls_memset(&r, 0, sizeof(r));
    ch->newest = !ch->newest;
    atomic_store_explicit(&ch->newest_opened, false, memory_order_relaxed);
    ch->drop_at = 0;
    atomic_store_explicit(&ch->rx_top, 0, memory_order_relaxed);
    return 0;
}

int dchan_switch(struct dchan *ch)
{
    if (!ch->next.aead)
        return -EINVAL;
    tx_wipe(&ch->tx);
    ch->tx.aead = ch->next.aead;
    ch->tx.epoch = ch->next.epoch;
    memcpy(ch->tx.iv, ch->next.iv, DCHAN_IV);
    atomic_store_explicit(&ch->tx.ctr, 0, memory_order_relaxed);
    ch->next.aead = NULL;
    tx_wipe(&ch->next);
    return 0;
}

void dchan_expire(struct dchan *ch, uint64_t now_ms)
{
    struct dchan_rx *old = &ch->rx[!ch->newest];

    if (!old->aead || !atomic_load_explicit(&ch->newest_opened, memory_order_relaxed))
        return;
    if (ch->drop_at == 0)
        ch->drop_at = now_ms + DCHAN_OVERLAP_MS;
    else if (now_ms >= ch->drop_at)
        rx_wipe(old);
}

uint32_t dchan_tx_epoch(const struct dchan *ch)
{
    return ch->tx.epoch;
}

uint32_t dchan_rx_epoch(const struct dchan *ch)
{
    return ch->rx[ch->newest].epoch;
}

bool dchan_newest_opened(const struct dchan *ch)
{
    return atomic_load_explicit(&ch->newest_opened, memory_order_relaxed);
}

bool dchan_wants_rekey(const struct dchan *ch)
{
    return atomic_load_explicit(&ch->tx.ctr, memory_order_relaxed) >= DCHAN_REKEY_AT ||
           atomic_load_explicit(&ch->rx_top, memory_order_relaxed) >= DCHAN_REKEY_AT;
}

int dchan_tx_seek(struct dchan *ch, uint64_t ctr)
{
    if (ctr < atomic_load_explicit(&ch->tx.ctr, memory_order_relaxed) || ctr > DCHAN_LIMIT)
        return -EINVAL;
    atomic_store_explicit(&ch->tx.ctr, ctr, memory_order_relaxed);
    return 0;
}
