/*
 * fec.h: forward error correction on the UDP data channel
 * (docs/tunnel-protocol.md, "PARITY and LOSS"). A sender on a lossy path
 * follows every group of n DATA records with one PARITY record: the XOR of
 * the n sealed datagrams, each zero-padded to the longest, and the XOR of
 * their lengths. A receiver that got all but one of them rebuilds the
 * missing datagram, which then passes the same checks (and the AEAD) as one
 * that arrived.
 *
 * Pure: no socket, no clock, no lock; the caller serializes each half.
 */
#ifndef MTLSGW_FEC_H
#define MTLSGW_FEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEC_K_MAX 16 /* records a PARITY may cover */
/* Records the receiver keeps: two groups of the largest. */
#define FEC_RING (2 * FEC_K_MAX)
#define FEC_PARITY_HDR 4 /* count, 0, the lengths' XOR (BE16) */

/* The sender's group being built. */
struct fec_tx {
    unsigned n;         /* records in it */
    size_t max;         /* the longest */
    uint16_t lenx;      /* their lengths' XOR */
    unsigned char *acc; /* their XOR; cap bytes, zero past max */
    size_t cap;
};

/* 0 or -ENOMEM; cap: the longest record that will be added. */
int fec_tx_init(struct fec_tx *f, size_t cap);
void fec_tx_fini(struct fec_tx *f);
/* Add a sealed record (its whole datagram); false when it is longer than
 * cap (then the group ends without it: call fec_tx_parity first). */
int fec_tx_add(struct fec_tx *f, const unsigned char *rec, size_t len);
/* Forget the group (a record of it took a counter but was not sent). */
void fec_tx_drop(struct fec_tx *f);
/* The group's PARITY plaintext at pt (room for FEC_PARITY_HDR + cap), and
 * a new group; returns its length, 0 when the group is empty. */
size_t fec_tx_parity(struct fec_tx *f, unsigned char *pt);

/* The receiver's copies of the last FEC_RING authentic records. */
struct fec_rx {
    size_t cap;                   /* the longest record kept */
    unsigned char *slot[FEC_RING];
    uint64_t ctr[FEC_RING];       /* counter + 1 of what a slot holds; 0: none */
    uint32_t epoch[FEC_RING];
    uint16_t len[FEC_RING];
    unsigned char *spare;         /* the record being checked, copied */
    size_t staged;                /* its length; 0: none (too long) */
    unsigned char *out;           /* a rebuilt record */
};

struct fec_rx *fec_rx_new(size_t cap);
void fec_rx_free(struct fec_rx *r);
/* Before a datagram is opened in place: copy it aside. */
void fec_rx_stage(struct fec_rx *r, const unsigned char *rec, size_t len);
/* After the staged datagram authenticated as record ctr of epoch: keep the
 * copy (a forged datagram is never kept, so it displaces nothing). */
void fec_rx_keep(struct fec_rx *r, uint32_t epoch, uint64_t ctr);
/*
 * An authentic PARITY of epoch, counter pc, plaintext pt (plen bytes): it
 * covers the records pc - n .. pc - 1. When exactly one of them is not
 * kept, rebuild it into r->out: returns its length with *missing its
 * counter; 0: nothing to rebuild (none or two or more missing); -EBADMSG: a
 * malformed PARITY. The rebuilt bytes are a datagram like any other: open
 * it with the same checks.
 */
int fec_rx_recover(struct fec_rx *r, uint32_t epoch, uint64_t pc, const unsigned char *pt,
                   size_t plen, uint64_t *missing);

/* The group size for a loss the peer reports (units of 0.01 %): 0 (none)
 * under FEC_LOSS_ON, else 10 % / loss, between 2 and FEC_K_MAX: at 1 %,
 * one PARITY per 10 records (10 % more), which leaves about 0.1 % of the
 * records lost (one of the other ten lost too). */
#define FEC_LOSS_ON 20   /* 0.2 %: parity starts */
#define FEC_LOSS_OFF 5   /* 0.05 %: parity stops after FEC_QUIET reports under it */
#define FEC_QUIET 10
#define FEC_ONSET 3      /* reports in a row at FEC_LOSS_ON or more before parity starts */
unsigned fec_group_for(unsigned loss);

/* The sender's side of the reports: how many DATA records go per PARITY.
 * Receive half (the reports arrive there); k is copied to where the TX
 * thread reads it. */
#define FEC_REPORT_MIN_MS 900 /* a report sooner after the last is ignored */
#define FEC_STALE_MS 5000     /* no report this long: parity stops */
struct fec_ctl {
    /* Read by the TX thread too (k, and heard for fec_ctl_stale). */
    atomic_uint k;            /* parity after this many DATA records; 0: none */
    _Atomic long long heard;  /* ms when the last report counted; 0: none yet */
    unsigned quiet, lossy;    /* reports in a row under FEC_LOSS_OFF; at FEC_LOSS_ON or more */
    unsigned long long tx0, drop0; /* tx and drop at that report */
};

/*
 * The peer reports `loss` (0.01 %, clamped to 100 %) at `now` (ms, a
 * monotonic clock); tx and drop: the records this side has sealed and, of
 * them, dropped itself (its send buffer full) so far. Those drops since the
 * last report are taken off (they never reached the path). Then: parity
 * starts after FEC_ONSET reports in a row at FEC_LOSS_ON or more (k =
 * fec_group_for, set anew by each such report while on), and stops after
 * FEC_QUIET in a row under FEC_LOSS_OFF. Returns the loss taken, or -1 for
 * a report ignored (under FEC_REPORT_MIN_MS after the last one counted).
 */
int fec_ctl_report(struct fec_ctl *c, unsigned loss, long long now, unsigned long long tx,
                   unsigned long long drop);
/* The TX thread, before a batch: true (and parity stopped) when parity is
 * on and no report counted for FEC_STALE_MS (a quiet peer, or its reports
 * dropped on the way). */
bool fec_ctl_stale(struct fec_ctl *c, long long now);

#endif
