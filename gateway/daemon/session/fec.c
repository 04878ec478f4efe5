/*
 * fec.c: parity over sealed records on the UDP data channel (fec.h).
 */
#include "fec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* dst ^= src, len bytes, eight a step. */
static void xor_into(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, dst + i, 8);
        memcpy(&b, src + i, 8);
        a ^= b;
        memcpy(dst + i, &a, 8);
    }
    for (; i < len; i++)
        dst[i] ^= src[i];
}

int fec_tx_init(struct fec_tx *f, size_t cap)
{
    memset(f, 0, sizeof(*f));
    if (!(f->acc = calloc(1, cap)))
        return -ENOMEM;
    f->cap = cap;
    return 0;
}

void fec_tx_fini(struct fec_tx *f)
{
    free(f->acc);
    memset(f, 0, sizeof(*f));
}

int fec_tx_add(struct fec_tx *f, const unsigned char *rec, size_t len)
{
    if (len > f->cap || len > UINT16_MAX || f->n >= FEC_K_MAX)
        return 0;
    xor_into(f->acc, rec, len);
    f->lenx ^= (uint16_t)len;
    if (len > f->max)
        f->max = len;
    f->n++;
    return 1;
}

void fec_tx_drop(struct fec_tx *f)
{
    memset(f->acc, 0, f->max);
    f->n = 0;
    f->max = 0;
    f->lenx = 0;
}

size_t fec_tx_parity(struct fec_tx *f, unsigned char *pt)
{
    size_t len = FEC_PARITY_HDR + f->max;

    if (!f->n)
        return 0;
    pt[0] = (unsigned char)f->n;
    pt[1] = 0;
    pt[2] = (unsigned char)(f->lenx >> 8);
    pt[3] = (unsigned char)f->lenx;
    memcpy(pt + FEC_PARITY_HDR, f->acc, f->max);
    fec_tx_drop(f);
    return len;
}

struct fec_rx *fec_rx_new(size_t cap)
{
    struct fec_rx *r = calloc(1, sizeof(*r));
    bool ok = r != NULL;

    for (int i = 0; ok && i < FEC_RING; i++)
        ok = (r->slot[i] = malloc(cap)) != NULL;
    if (ok)
        ok = (r->spare = malloc(cap)) && (r->out = malloc(cap));
    if (!ok) {
        fec_rx_free(r);
        return NULL;
    }
    r->cap = cap;
    return r;
}

void fec_rx_free(struct fec_rx *r)
{
    if (!r)
        return;
    for (int i = 0; i < FEC_RING; i++)
        free(r->slot[i]);
    free(r->spare);
    free(r->out);
    free(r);
}

void fec_rx_stage(struct fec_rx *r, const unsigned char *rec, size_t len)
{
    r->staged = 0;
    if (len == 0 || len > r->cap || len > UINT16_MAX)
        return;
    memcpy(r->spare, rec, len);
    r->staged = len;
}

void fec_rx_keep(struct fec_rx *r, uint32_t epoch, uint64_t ctr)
{
    unsigned i = (unsigned)(ctr % FEC_RING);
    unsigned char *old = r->slot[i];

    if (!r->staged)
        return;
    r->slot[i] = r->spare;
    r->spare = old;
    r->ctr[i] = ctr + 1;
    r->epoch[i] = epoch;
    r->len[i] = (uint16_t)r->staged;
    r->staged = 0;
}

static bool kept(const struct fec_rx *r, uint32_t epoch, uint64_t c)
{
    unsigned i = (unsigned)(c % FEC_RING);

    return r->ctr[i] == c + 1 && r->epoch[i] == epoch;
}

int fec_rx_recover(struct fec_rx *r, uint32_t epoch, uint64_t pc, const unsigned char *pt,
                   size_t plen, uint64_t *missing)
{
    unsigned n, absent = 0;
    size_t blen, len;
    uint64_t miss = 0;

    if (plen < FEC_PARITY_HDR)
        return -EBADMSG;
    n = pt[0];
    if (n == 0 || n > FEC_K_MAX || pt[1] != 0 || pc < n)
        return -EBADMSG;
    blen = plen - FEC_PARITY_HDR;
    for (uint64_t c = pc - n; c < pc; c++) {
        if (!kept(r, epoch, c)) {
            absent++;
            miss = c;
        }
    }
    if (absent != 1 || blen > r->cap)
        return 0;
    len = (size_t)(pt[2] << 8 | pt[3]);
    memcpy(r->out, pt + FEC_PARITY_HDR, blen);
    for (uint64_t c = pc - n; c < pc; c++) {
        unsigned i = (unsigned)(c % FEC_RING);
        if (c == miss)
            continue;
        if (r->len[i] > blen) /* the parity is shorter than a record it covers */
            return -EBADMSG;
        xor_into(r->out, r->slot[i], r->len[i]);
        len ^= r->len[i];
    }
    if (len == 0 || len > blen)
        return -EBADMSG;
    *missing = miss;
    return (int)len;
}

unsigned fec_group_for(unsigned loss)
{
    unsigned k;

    if (loss < FEC_LOSS_ON)
        return 0;
    k = 1000 / loss;
    return k < 2 ? 2 : k > FEC_K_MAX ? FEC_K_MAX : k;
}

int fec_ctl_report(struct fec_ctl *c, unsigned loss, long long now, unsigned long long tx,
                   unsigned long long drop)
{
    unsigned self = 0;

    if (c->heard && now - c->heard < FEC_REPORT_MIN_MS)
        return -1;
    c->heard = now;
    if (loss > 10000)
        loss = 10000;
    if (tx > c->tx0 && drop >= c->drop0)
        self = (unsigned)((drop - c->drop0) * 10000 / (tx - c->tx0));
    c->tx0 = tx;
    c->drop0 = drop;
    loss = loss > self ? loss - self : 0;
    if (loss >= FEC_LOSS_ON) {
        c->quiet = 0;
        /* A path that loses, not one burst (an overloaded host drops
         * bursts, where parity would only add work). */
        if (c->k || ++c->lossy >= FEC_ONSET)
            c->k = fec_group_for(loss);
    } else {
        c->lossy = 0;
        if (loss >= FEC_LOSS_OFF)
            c->quiet = 0;
        else if (c->k && ++c->quiet >= FEC_QUIET)
            c->k = 0;
    }
    return (int)loss;
}

bool fec_ctl_stale(struct fec_ctl *c, long long now)
{
    if (!c->k || now - c->heard <= FEC_STALE_MS)
        return false;
    c->k = 0;
    return true;
}
