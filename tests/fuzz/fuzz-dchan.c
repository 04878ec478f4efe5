/*
 * fuzz-dchan: the UDP data channel's record layer
 * (gateway/daemon/session/dchan.h), which reads every datagram that reaches
 * the tunnel's UDP port, from anyone.
 *
 * Input byte 0 chooses the mode (low two bits), the cipher (bit 2) and the
 * side that receives (bit 3); the rest:
 *   0  a datagram from a stranger, handed to dchan_peek_id and dchan_open
 *      (bit 4: the channel's id written in, bit 5: epoch 0 written in, so
 *      the bytes reach the AEAD check). Nothing may open: the harness holds
 *      the only keys.
 *   1  a record sealed by the other side (type, then plaintext) must open
 *      to the same type and bytes, once; a replay is refused, and so is the
 *      record with one bit flipped (bytes 1-2 choose it).
 *   2  counters (16 bits each: a signed step from the highest, times 64
 *      when the top bit is set) through the anti-replay window, against a
 *      naive model of it: same verdict every time.
 */
#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "dchan.h"
#include "fuzz.h"

#define ID 0x0a0b0c0du

static void keys_for(struct dchan_keys *k, enum dchan_role role, bool chacha)
{
    unsigned char up[DCHAN_KEY + DCHAN_IV], down[DCHAN_KEY + DCHAN_IV];

    memset(up, 0x5c, sizeof(up));
    memset(down, 0xa3, sizeof(down));
    memset(k, 0, sizeof(*k));
    k->id = ID;
    k->role = role;
    k->cipher = chacha ? GNUTLS_CIPHER_CHACHA20_POLY1305 : GNUTLS_CIPHER_AES_256_GCM;
    memcpy(k->tx_key, role == DCHAN_HUB ? down : up, DCHAN_KEY);
    memcpy(k->tx_iv, (role == DCHAN_HUB ? down : up) + DCHAN_KEY, DCHAN_IV);
    memcpy(k->rx_key, role == DCHAN_HUB ? up : down, DCHAN_KEY);
    memcpy(k->rx_iv, (role == DCHAN_HUB ? up : down) + DCHAN_KEY, DCHAN_IV);
}

static void stranger(struct dchan *rx, unsigned mode, const uint8_t *data, size_t size)
{
    unsigned char *rec = malloc(size ? size : 1);
    uint32_t id = 0;
    unsigned type = 0;
    int peek, rc;

    FUZZ_CHECK(rec != NULL);
    memcpy(rec, data, size);
    if ((mode & 0x10) && size >= 8) {
        rec[4] = ID >> 24;
        rec[5] = ID >> 16 & 0xff;
        rec[6] = ID >> 8 & 0xff;
        rec[7] = ID & 0xff;
    }
    if ((mode & 0x20) && size >= 4)
        rec[2] = rec[3] = 0;
    peek = dchan_peek_id(rec, size, &id);
    FUZZ_CHECK(peek == 0 || peek == -EBADMSG);
    FUZZ_CHECK(peek < 0 || size >= DCHAN_OVERHEAD);
    rc = dchan_open(rx, rec, size, &type);
    FUZZ_CHECK(rc == -EBADMSG || rc == -ENOKEY || rc == -EALREADY || rc == -ESTALE);
    FUZZ_CHECK(peek == 0 || rc == -EBADMSG);
    FUZZ_CHECK(id == ID || rc == -EBADMSG);
    free(rec);
}

static void round_trip(struct dchan *tx, struct dchan *rx, const uint8_t *data, size_t size)
{
    unsigned type, got = 0;
    size_t flip, len;
    unsigned char *rec, *copy;
    int n, rc;

    if (size < 3)
        return;
    type = data[0] % 6;
    flip = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    len = size;
    rec = malloc(len + DCHAN_OVERHEAD);
    copy = malloc(len + DCHAN_OVERHEAD);
    FUZZ_CHECK(rec && copy);
    memcpy(rec + DCHAN_HDR, data, len);
    n = dchan_seal(tx, type, rec, len, len + DCHAN_OVERHEAD);
    if (n < 0) {
        FUZZ_CHECK(n == -EINVAL || n == -EMSGSIZE);
        goto out;
    }
    FUZZ_CHECK((size_t)n == len + DCHAN_OVERHEAD);
    memcpy(copy, rec, (size_t)n);
    /* One bit flipped first: refused, and the window does not move. */
    flip %= (size_t)n * 8;
    rec[flip / 8] ^= (unsigned char)(1u << (flip % 8));
    rc = dchan_open(rx, rec, (size_t)n, &got);
    FUZZ_CHECK(rc < 0);
    memcpy(rec, copy, (size_t)n);
    rc = dchan_open(rx, rec, (size_t)n, &got);
    FUZZ_CHECK(rc >= 0 && (size_t)rc == len && got == type);
    FUZZ_CHECK(memcmp(rec + DCHAN_HDR, data, len) == 0);
    memcpy(rec, copy, (size_t)n);
    FUZZ_CHECK(dchan_open(rx, rec, (size_t)n, &got) == -EALREADY);
out:
    free(rec);
    free(copy);
}

/* The model: seen[d] for the counter d below the highest, shifted on every
 * advance. Exact: within DCHAN_WINDOW of the highest, once; nothing older. */
static void window(const uint8_t *data, size_t size)
{
    static bool seen[DCHAN_WINDOW];
    struct dchan_window w;
    uint64_t max = 0;
    bool any = false;

    dchan_window_init(&w);
    memset(seen, 0, sizeof(seen));
    for (size_t i = 0; i + 1 < size; i += 2) {
        int step = (data[i] & 0x7f) << 8 | data[i + 1];
        int64_t d = (step - 0x2000) * (data[i] & 0x80 ? 64 : 1);
        uint64_t ctr = d < 0 && (uint64_t)-d > max ? 0 : max + (uint64_t)d;
        int want, rc;

        if (!any || ctr > max)
            want = 0;
        else if (max - ctr >= DCHAN_WINDOW)
            want = -ESTALE;
        else
            want = seen[max - ctr] ? -EALREADY : 0;
        rc = dchan_window_check(&w, ctr);
        FUZZ_CHECK(rc == want);
        if (rc < 0)
            continue;
        dchan_window_update(&w, ctr);
        if (!any) {
            max = ctr;
            any = true;
        } else if (ctr > max) {
            uint64_t adv = ctr - max;
            if (adv >= DCHAN_WINDOW) {
                memset(seen, 0, sizeof(seen));
            } else {
                memmove(seen + adv, seen, DCHAN_WINDOW - adv);
                memset(seen, 0, adv);
            }
            max = ctr;
        }
        seen[max - ctr] = true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dchan_keys kh, ks;
    struct dchan *hub = NULL, *spoke = NULL;
    unsigned mode;
    bool to_spoke;

    if (size < 1)
        return 0;
    mode = data[0];
    to_spoke = mode & 0x08;
    data++;
    size--;
    if ((mode & 3) == 2) {
        window(data, size);
        return 0;
    }
    keys_for(&kh, DCHAN_HUB, mode & 0x04);
    keys_for(&ks, DCHAN_SPOKE, mode & 0x04);
    FUZZ_CHECK(dchan_new(&kh, &hub) == 0 && dchan_new(&ks, &spoke) == 0);
    if ((mode & 3) == 1)
        round_trip(to_spoke ? hub : spoke, to_spoke ? spoke : hub, data, size);
    else
        stranger(to_spoke ? spoke : hub, mode, data, size);
    dchan_free(hub);
    dchan_free(spoke);
    return 0;
}
