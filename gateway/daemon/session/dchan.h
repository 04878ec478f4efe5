/*
 * dchan.h: the UDP data channel's record layer (docs/tunnel-protocol.md,
 * "UDP data channel"): AEAD records keyed from the tunnel's TLS session by
 * the exporter, a 64-bit counter nonce per direction, a sliding anti-replay
 * window, and epochs for the rekey the control channel drives.
 *
 * Pure: no socket, no clock, no log. The caller reads a datagram, finds the
 * channel by dchan_peek_id(), and calls dchan_open(); it seals a packet in
 * place with DCHAN_HDR bytes of headroom and DCHAN_TAG of tailroom.
 *
 * Threads: the send half (dchan_seal, dchan_switch) and the receive half
 * (dchan_open, dchan_install, dchan_expire) may each run on a thread of its
 * own; calls within one half are serialized by the caller, and a
 * dchan_install happens before the dchan_switch to that epoch.
 */
#ifndef MTLSGW_DCHAN_H
#define MTLSGW_DCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#define DCHAN_VERSION 1
/* Record types (the low nibble of byte 0). */
#define DCHAN_DATA 1        /* one IPv4 or IPv6 packet, both ways */
#define DCHAN_PROBE 2       /* spoke -> hub: 8-byte probe id, then padding */
#define DCHAN_PROBE_REPLY 3 /* hub -> spoke: the probe's bytes, echoed */
#define DCHAN_KEEPALIVE 4   /* both ways: empty */
#define DCHAN_PARITY 5      /* both ways: the XOR of the records before it (fec.h) */
#define DCHAN_LOSS 6        /* both ways: the loss the sender of it sees (BE16, 0.01 %), 0 */
#define DCHAN_LOSS_LEN 4

#define DCHAN_HDR 16 /* type, 0, epoch (BE16), channel id (BE32), counter (BE64) */
#define DCHAN_TAG 16
#define DCHAN_OVERHEAD (DCHAN_HDR + DCHAN_TAG)
#define DCHAN_PROBE_ID 8
/* A UDP datagram over IPv4 carries at most 65507 bytes. */
#define DCHAN_PAYLOAD_MAX (65507 - DCHAN_OVERHEAD)

/* The exporter label (RFC 5705 / RFC 8446 section 7.5). */
#define DCHAN_LABEL "EXPORTER-mtlsgw-udp-v1"
#define DCHAN_KEY 32
#define DCHAN_IV 12

/* Anti-replay: a bitmap of the last DCHAN_WINDOW_BITS counters (RFC 6479's
 * ring of words); any counter within DCHAN_WINDOW of the highest seen is
 * accepted once, reordered or not. */
#define DCHAN_WINDOW_BITS 8192
#define DCHAN_WINDOW (DCHAN_WINDOW_BITS - 64)

/* Per epoch and direction: no record is sealed or opened with a counter at
 * or past DCHAN_LIMIT; dchan_wants_rekey() turns true at DCHAN_REKEY_AT, and
 * the caller also starts a rekey every DCHAN_REKEY_MS. The previous epoch's
 * receive key stays DCHAN_OVERLAP_MS after the new one first authenticated. */
#define DCHAN_LIMIT (UINT64_C(1) << 32)
#define DCHAN_REKEY_AT (UINT64_C(1) << 31)
#define DCHAN_REKEY_MS (10 * 60 * 1000)
#define DCHAN_OVERLAP_MS 5000

enum dchan_role { DCHAN_HUB, DCHAN_SPOKE };

/* One epoch's secrets, as seen from one side: tx is what this side seals
 * with, rx what it opens with (the hub's tx is the spoke's rx). */
struct dchan_keys {
    uint32_t epoch;
    uint32_t id;                      /* the channel id: the same every epoch */
    gnutls_cipher_algorithm_t cipher; /* AES-256-GCM or ChaCha20-Poly1305 */
    enum dchan_role role;
    unsigned char tx_key[DCHAN_KEY], tx_iv[DCHAN_IV];
    unsigned char rx_key[DCHAN_KEY], rx_iv[DCHAN_IV];
};

struct dchan_window {
    uint64_t top; /* highest counter accepted + 1; 0: none yet */
    uint64_t bits[DCHAN_WINDOW_BITS / 64];
};

struct dchan;

/*
 * Derive epoch `epoch`'s keys from an established TLS session: TLS 1.3, or
 * TLS 1.2 with the extended master secret (RFC 7627; without it the
 * exporter is not bound to the handshake: -ENOTSUP). The cipher follows the
 * session's: ChaCha20-Poly1305 when it negotiated that, else AES-256-GCM.
 * Returns 0 or -errno; *keys is untouched on failure. Wipe it with
 * dchan_keys_wipe() once a channel holds it.
 */
int dchan_keys_from_session(gnutls_session_t session, enum dchan_role role, uint32_t epoch,
                            struct dchan_keys *keys);
void dchan_keys_wipe(struct dchan_keys *keys);

/* A channel at `keys`'s epoch (rx and tx). */
int dchan_new(const struct dchan_keys *keys, struct dchan **out);
void dchan_free(struct dchan *ch);

/*
 * Seal a record in place. rec: DCHAN_HDR bytes of room, then the `len`
 * bytes of plaintext, then room for DCHAN_TAG (cap: all of rec). Writes the
 * header, encrypts, appends the tag; returns the record's length, or
 * -EINVAL (type, cap), -EMSGSIZE (len), -EKEYEXPIRED (the epoch's counter
 * limit: rekey), -EIO (the cipher).
 */
int dchan_seal(struct dchan *ch, unsigned type, unsigned char *rec, size_t len, size_t cap);

/*
 * Open a record in place. Returns the plaintext's length (at rec +
 * DCHAN_HDR) with *type set, or: -EBADMSG (malformed, wrong channel, a type
 * this side does not take, not authentic), -ENOKEY (an epoch this side does
 * not hold), -EALREADY (a replay), -ESTALE (older than the window). Any
 * error: drop the datagram and answer nothing; rec's bytes are then
 * undefined. Only an authentic record moves the window.
 */
int dchan_open(struct dchan *ch, unsigned char *rec, size_t len, unsigned *type);

/* The epoch's low 16 bits and the counter a record's header says (clear
 * text: authentic only once dchan_open took the record). */
uint16_t dchan_rec_epoch(const unsigned char *rec);
uint64_t dchan_rec_counter(const unsigned char *rec);

/* The channel id of a datagram, before any crypto: 0, or -EBADMSG when the
 * bytes cannot be a record (short, version, reserved byte, type). */
int dchan_peek_id(const unsigned char *buf, size_t len, uint32_t *id);

/*
 * Rekey, driven over the control channel: install the next epoch's keys
 * for receiving (and sending later): epoch must be the newest + 1. The
 * oldest receive key goes if two are held. dchan_switch() then seals with
 * the newest installed epoch. Both return 0 or -EINVAL.
 */
int dchan_install(struct dchan *ch, const struct dchan_keys *keys);
int dchan_switch(struct dchan *ch);

/* Drop the previous epoch's receive key DCHAN_OVERLAP_MS after the newer
 * one first opened a record (call it from a tick with a monotonic clock). */
void dchan_expire(struct dchan *ch, uint64_t now_ms);

/* The epoch this side seals with; the newest one installed; whether a
 * counter passed DCHAN_REKEY_AT in the current epoch (either direction). */
uint32_t dchan_tx_epoch(const struct dchan *ch);
uint32_t dchan_rx_epoch(const struct dchan *ch);
bool dchan_wants_rekey(const struct dchan *ch);
/* Whether the newest receive epoch has opened a record: the peer seals with
 * it, so on one path the older epoch's records sent before have very likely
 * arrived (UDP does not promise order). Lock-free: a TX thread asks. */
bool dchan_newest_opened(const struct dchan *ch);

/* Move the send counter forward to `ctr` (never back: no nonce is reused),
 * for tests and benchmarks of the counter limit. 0 or -EINVAL. */
int dchan_tx_seek(struct dchan *ch, uint64_t ctr);

/* The anti-replay window on its own (dchan_open uses it). check: 0 when
 * `ctr` may be accepted, -EALREADY (seen), -ESTALE (too old); update
 * records an authentic one (after check said 0). */
void dchan_window_init(struct dchan_window *w);
int dchan_window_check(const struct dchan_window *w, uint64_t ctr);
void dchan_window_update(struct dchan_window *w, uint64_t ctr);

#endif
