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

long frame_next(const unsigned char *buf, size_t len, unsigned mtu, bool config_ok,
                struct frame *f, const char **why)
{
    size_t plen, limit;
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
        if (!config_ok) {
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
    default:
        *why = "unknown frame type";
        return -EPROTO;
    }
    if (plen > limit) {
        *why = "frame longer than its limit";
        return -EPROTO;
    }
    if (len < FRAME_HDR + plen)
        return 0;
    if (type == FRAME_PACKET && !frame_packet_ok(buf + FRAME_HDR, plen)) {
        *why = "PACKET is not one IP packet";
        return -EPROTO;
    }
    f->type = type;
    f->payload = buf + FRAME_HDR;
    f->len = plen;
    return (long)(FRAME_HDR + plen);
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
    if (copy_list(o, "routes", out->routes, &out->n_routes, err, errlen) < 0 ||
        copy_list(o, "networks", out->networks, &out->n_networks, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}
