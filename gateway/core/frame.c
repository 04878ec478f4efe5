#include "frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

bool frame_packet_ok(const unsigned char *p, size_t len)
{
    if (len >= 20 && (p[0] >> 4) == 4)
        return ((size_t)p[2] << 8 | p[3]) == len;
    if (len >= 40 && (p[0] >> 4) == 6)
        return ((size_t)p[4] << 8 | p[5]) + 40 == len;
    return false;
}

void frame_header(unsigned char *out, int type, size_t len)
{
    out[0] = (unsigned char)type;
    out[1] = 0;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
}

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

void frame_segments_header(unsigned char *out, const struct frame_offload *off, size_t len)
{
    frame_header(out, FRAME_SEGMENTS, len);
    out[FRAME_HDR] = off->flags;
    out[FRAME_HDR + 1] = off->gso_type;
    put16(out + FRAME_HDR + 2, off->hdr_len);
    put16(out + FRAME_HDR + 4, off->gso_size);
    put16(out + FRAME_HDR + 6, off->csum_start);
    put16(out + FRAME_HDR + 8, off->csum_offset);
}

/* Where the TCP header of a segment train ends (checked by frame_segments_bad). */
static size_t tcp_end(const struct frame_offload *o, const unsigned char *p)
{
    return (size_t)o->csum_start + (size_t)(p[o->csum_start + 12] >> 4) * 4;
}

size_t frame_segments_headers(const struct frame_offload *o, const unsigned char *p)
{
    return o->gso_type == FRAME_OFF_GSO_NONE ? 0 : tcp_end(o, p);
}

/* Why a SEGMENTS frame's offload header and packet cannot go to the kernel,
 * or NULL. Only what a TUN takes from a guest: a checksum to complete, TCP
 * segmentation over IPv4 or IPv6 (no extension headers), ECN. */
const char *frame_segments_bad(const struct frame_offload *o, const unsigned char *p, size_t len,
                               unsigned mtu)
{
    unsigned gso = o->gso_type & (unsigned)~FRAME_OFF_GSO_ECN;
    size_t ihl;

    if (o->flags & ~(FRAME_OFF_NEEDS_CSUM | FRAME_OFF_DATA_VALID))
        return "unknown offload flags";
    if (gso != FRAME_OFF_GSO_TCPV4 && gso != FRAME_OFF_GSO_TCPV6 &&
        o->gso_type != FRAME_OFF_GSO_NONE)
        return "unknown offload type";
    if (!frame_packet_ok(p, len))
        return "SEGMENTS is not one IP packet";
    if (o->hdr_len > len)
        return "offload header length past the packet";
    if ((o->flags & FRAME_OFF_NEEDS_CSUM) &&
        (o->csum_start < 20 || (size_t)o->csum_start + o->csum_offset + 2 > len))
        return "checksum position outside the packet";
    if (o->gso_type == FRAME_OFF_GSO_NONE) {
        if (len > mtu)
            return "frame longer than its limit";
        if (o->gso_size)
            return "segment size without segmentation";
        return NULL;
    }
    if (!(o->flags & FRAME_OFF_NEEDS_CSUM))
        return "segmentation without a checksum to complete";
    /* Linux never segments below 48 bytes (TCP_MIN_SND_MSS); smaller ones
     * would only turn one frame into thousands of packets. */
    if (o->gso_size < FRAME_GSO_MIN || o->gso_size > mtu)
        return "segment size out of range";
    ihl = (p[0] >> 4) == 4 ? (size_t)(p[0] & 15) * 4 : 40;
    if (gso == FRAME_OFF_GSO_TCPV4 ? (p[0] >> 4) != 4 || p[9] != 6 : (p[0] >> 4) != 6 || p[6] != 6)
        return "segmentation of something that is not TCP";
    if (ihl < 20 || o->csum_start != ihl || o->csum_offset != 16 || ihl + 20 > len ||
        p[ihl + 12] >> 4 < 5 || tcp_end(o, p) > len)
        return "segmentation with a bad TCP header";
    return NULL;
}

unsigned frame_segment_count(const struct frame *f)
{
    size_t end, n;

    if (f->type != FRAME_SEGMENTS || f->off.gso_type == FRAME_OFF_GSO_NONE)
        return 1;
    end = tcp_end(&f->off, f->payload);
    n = (f->len - end + f->off.gso_size - 1) / f->off.gso_size;
    return n ? (unsigned)n : 1;
}

long frame_next(const unsigned char *buf, size_t len, unsigned mtu, unsigned allow,
                struct frame *f, const char **why)
{
    size_t plen, limit, hdr = FRAME_HDR;
    int type;

    if (len < FRAME_HDR)
        return 0;
    type = buf[0];
    plen = (size_t)buf[2] << 8 | buf[3];
    if (buf[1] != 0) {
        *why = "flags not 0";
        return -EPROTO;
    }
    switch (type) {
    case FRAME_CONFIG:
        if (!(allow & FRAME_ALLOW_CONFIG)) {
            *why = "unexpected CONFIG";
            return -EPROTO;
        }
        limit = FRAME_CONFIG_MAX;
        break;
    case FRAME_PACKET:
        limit = mtu;
        break;
    case FRAME_KEEPALIVE:
        limit = 0;
        break;
    case FRAME_CLOSE:
        limit = FRAME_CLOSE_MAX;
        break;
    case FRAME_OFFLOAD:
        if (!(allow & FRAME_ALLOW_OFFLOAD)) {
            *why = "unexpected OFFLOAD";
            return -EPROTO;
        }
        limit = 0;
        break;
    case FRAME_SEGMENTS:
        if (!(allow & FRAME_ALLOW_SEGMENTS)) {
            *why = "SEGMENTS before OFFLOAD";
            return -EPROTO;
        }
        limit = FRAME_SEGMENTS_MAX;
        hdr += FRAME_OFFHDR;
        break;
    case FRAME_REKEY:
        if (!(allow & FRAME_ALLOW_REKEY)) {
            *why = "REKEY without a UDP channel";
            return -EPROTO;
        }
        if (plen != FRAME_REKEY_LEN) {
            *why = "REKEY not 4 bytes";
            return -EPROTO;
        }
        limit = FRAME_REKEY_LEN;
        break;
    default:
        *why = "unknown frame type";
        return -EPROTO;
    }
    if (plen > limit) {
        *why = "frame longer than its limit";
        return -EPROTO;
    }
    if (len < hdr + plen)
        return 0;
    if (type == FRAME_PACKET && !frame_packet_ok(buf + FRAME_HDR, plen)) {
        *why = "PACKET is not one IP packet";
        return -EPROTO;
    }
    memset(&f->off, 0, sizeof(f->off));
    if (type == FRAME_SEGMENTS) {
        const unsigned char *o = buf + FRAME_HDR;
        f->off.flags = o[0];
        f->off.gso_type = o[1];
        f->off.hdr_len = (unsigned short)get16(o + 2);
        f->off.gso_size = (unsigned short)get16(o + 4);
        f->off.csum_start = (unsigned short)get16(o + 6);
        f->off.csum_offset = (unsigned short)get16(o + 8);
        if ((*why = frame_segments_bad(&f->off, buf + hdr, plen, mtu)) != NULL)
            return -EPROTO;
    }
    f->type = type;
    f->payload = buf + hdr;
    f->len = plen;
    return (long)(hdr + plen);
}

/* A string member or list element into a FRAME_ADDRLEN buffer. */
static bool copy_str(struct json_object *v, char *out)
{
    const char *s;

    if (!json_object_is_type(v, json_type_string) || !(s = json_object_get_string(v)) ||
        strlen(s) >= FRAME_ADDRLEN)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static int copy_list(struct json_object *o, const char *key, char (*out)[FRAME_ADDRLEN],
                     size_t *n, char *err, size_t errlen)
{
    struct json_object *arr;

    *n = 0;
    if (!json_object_object_get_ex(o, key, &arr) || !json_object_is_type(arr, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(arr) && *n < FRAME_MAX_PREFIXES; i++) {
        if (!copy_str(json_object_array_get_idx(arr, i), out[*n])) {
            snprintf(err, errlen, "CONFIG %s[%zu] is not a prefix", key, i);
            return -EPROTO;
        }
        (*n)++;
    }
    return 0;
}

int frame_config_parse(const char *text, struct frame_config *out, char *err, size_t errlen)
{
    struct json_object *o = json_tokener_parse(text), *v;
    int rc = -EPROTO;

    memset(out, 0, sizeof(*out));
    if (!o || !json_object_object_get_ex(o, "address", &v) || !copy_str(v, out->address)) {
        snprintf(err, errlen, "CONFIG has no address");
        goto out;
    }
    if (!json_object_object_get_ex(o, "peer", &v) || !copy_str(v, out->peer)) {
        snprintf(err, errlen, "CONFIG has no peer");
        goto out;
    }
    if (json_object_object_get_ex(o, "mtu", &v)) {
        int mtu = json_object_get_int(v);
        if (mtu < 576 || mtu > 9000) {
            snprintf(err, errlen, "CONFIG mtu %d out of range", mtu);
            goto out;
        }
        out->mtu = (unsigned)mtu;
    }
    if (json_object_object_get_ex(o, "keepalive", &v)) {
        int ka = json_object_get_int(v);
        if (ka < 1 || ka > 3600) {
            snprintf(err, errlen, "CONFIG keepalive %d out of range", ka);
            goto out;
        }
        out->keepalive = (unsigned)ka;
    }
    if (json_object_object_get_ex(o, "offload", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            snprintf(err, errlen, "CONFIG offload is not true or false");
            goto out;
        }
        out->offload = json_object_get_boolean(v);
    }
    if (json_object_object_get_ex(o, "udp", &v)) {
        int port = json_object_get_int(v);
        if (!json_object_is_type(v, json_type_int) || port < 1 || port > 65535) {
            snprintf(err, errlen, "CONFIG udp is not a port from 1 to 65535");
            goto out;
        }
        out->udp = (unsigned)port;
    }
    if (copy_list(o, "routes", out->routes, &out->n_routes, err, errlen) < 0 ||
        copy_list(o, "networks", out->networks, &out->n_networks, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}
