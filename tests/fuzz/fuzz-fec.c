/*
 * fuzz-fec: parity on the UDP data channel (gateway/daemon/session/fec.h).
 * A PARITY's plaintext is authentic when it reaches fec_rx_recover, but it
 * comes from the peer, and what it covers is whatever the receiver kept:
 * neither may make the rebuild read or write out of bounds.
 *
 * Input byte 0 chooses the mode (low bit); the rest:
 *   0  kept records and a PARITY as bytes: a count of records (byte 1),
 *      each a 2-byte length and its bytes, kept at counters from byte 2;
 *      what is left is the PARITY's plaintext, covering the counters up to
 *      byte 3. The result is an error, nothing, or a record within the
 *      PARITY's length and the cap, with a counter it covers.
 *   1  a round trip: records of the input's lengths and bytes, their
 *      PARITY by fec_tx; with each one left out in turn, the rebuild gives
 *      its bytes back exactly.
 */
#include <errno.h>
#include <string.h>

#include "fec.h"
#include "fuzz.h"

#define CAP 1500

static void bytes_mode(const uint8_t *data, size_t size)
{
    struct fec_rx *r = fec_rx_new(CAP);
    unsigned count, first, pc;
    size_t at = 4;
    uint64_t miss = 0;
    int rc;

    FUZZ_CHECK(r != NULL);
    if (size < 4) {
        fec_rx_free(r);
        return;
    }
    count = data[1] % (FEC_RING + 1);
    first = data[2];
    pc = data[3];
    for (unsigned i = 0; i < count && at + 2 <= size; i++) {
        size_t len = (size_t)(data[at] << 8 | data[at + 1]) % (CAP + 8);
        at += 2;
        if (len > size - at)
            len = size - at;
        fec_rx_stage(r, data + at, len);
        fec_rx_keep(r, 0, first + i);
        at += len;
    }
    rc = fec_rx_recover(r, 0, pc, data + at, size - at, &miss);
    FUZZ_CHECK(rc == -EBADMSG || rc >= 0);
    if (rc > 0) {
        FUZZ_CHECK((size_t)rc <= size - at - FEC_PARITY_HDR && (size_t)rc <= CAP);
        FUZZ_CHECK(miss < pc && miss >= pc - data[at]);
    }
    fec_rx_free(r);
}

static void round_trip(const uint8_t *data, size_t size)
{
    static unsigned char rec[FEC_K_MAX][CAP], pt[FEC_PARITY_HDR + CAP];
    size_t len[FEC_K_MAX], plen;
    unsigned n = 0;
    size_t at = 1;
    struct fec_tx f;

    FUZZ_CHECK(fec_tx_init(&f, CAP) == 0);
    while (n < FEC_K_MAX && at + 2 <= size) {
        len[n] = 1 + (size_t)(data[at] << 8 | data[at + 1]) % CAP;
        at += 2;
        for (size_t i = 0; i < len[n]; i++)
            rec[n][i] = at + i < size ? data[at + i] : (unsigned char)i;
        at += len[n] < size - at ? len[n] : size - at;
        FUZZ_CHECK(fec_tx_add(&f, rec[n], len[n]) == 1);
        n++;
    }
    plen = fec_tx_parity(&f, pt);
    fec_tx_fini(&f);
    if (!n) {
        FUZZ_CHECK(plen == 0);
        return;
    }
    for (unsigned lost = 0; lost < n; lost++) {
        struct fec_rx *r = fec_rx_new(CAP);
        uint64_t miss = 0;
        int rc;
        FUZZ_CHECK(r != NULL);
        for (unsigned i = 0; i < n; i++) {
            if (i == lost)
                continue;
            fec_rx_stage(r, rec[i], len[i]);
            fec_rx_keep(r, 3, 100 + i);
        }
        rc = fec_rx_recover(r, 3, 100 + n, pt, plen, &miss);
        FUZZ_CHECK(rc == (int)len[lost] && miss == 100 + lost);
        FUZZ_CHECK(memcmp(r->out, rec[lost], len[lost]) == 0);
        fec_rx_free(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        round_trip(data, size);
    else
        bytes_mode(data, size);
    return 0;
}
