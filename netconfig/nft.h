/* Internal to netconfig/: the nftables transport shared by nft.c and
 * fwset.c. */
#ifndef MTLSGW_NC_NFT_H
#define MTLSGW_NC_NFT_H

#include <stdbool.h>
#include <stdint.h>

struct nc;
struct nftnl_batch;
struct nftnl_set;
struct nlmsghdr;

enum nc_set_id {
    NC_SET_TRUSTED,
    NC_SET_ALLOWED4,
    NC_SET_ALLOWED6,
    NC_SET_GATE4,
    NC_SET_GATE6,
    NC_SET_GATED,
    NC_SET_SOURCES4,
    NC_SET_SOURCES6,
    NC_SET_COUNT,
};

struct nc_set_def {
    const char *name;
    uint32_t key_type;
    uint32_t key_len;
    uint32_t flags;
    uint8_t fields[16]; /* concatenation field lengths, 0-terminated */
    uint32_t key_byteorder; /* for nft's listing; 0: leave it to nft */
};

extern const struct nc_set_def nc_sets[NC_SET_COUNT];

/* One transaction: begin, messages, commit (all or nothing). */
struct nc_batch {
    struct nc *nc;
    struct nftnl_batch *b;
    uint32_t begin_seq, last_seq;
    unsigned n_msgs;
};

int nc_batch_begin(struct nc *nc, struct nc_batch *b);
/* Header of the next message, to be filled and then nc_batch_next(). */
struct nlmsghdr *nc_batch_msg(struct nc_batch *b, uint16_t type, uint16_t flags);
void nc_batch_next(struct nc_batch *b);
/* Sends the batch and waits for every answer; an empty batch is a no-op. */
int nc_batch_commit(struct nc_batch *b, const char *what);
void nc_batch_free(struct nc_batch *b);
/* Extended-ack text of an NLMSG_ERROR into nc->kmsg. */
void nc_extack(struct nc *nc, const struct nlmsghdr *nlh);

/* All elements of one set of the table; -ENOENT when the table or the set
 * is missing (nc->err not set). */
int nc_set_dump(struct nc *nc, enum nc_set_id id, struct nftnl_set **out);
/* An empty set object naming one of the table's sets, for element
 * messages; elements are added with nc_elems_add (key_end for ranges,
 * timeout_ms 0 for none). */
int nc_elems_new(enum nc_set_id id, struct nftnl_set **out);
int nc_elems_add(struct nftnl_set *s, const void *key, const void *key_end,
                 uint32_t timeout_ms);
/* Appends an element message of type NFT_MSG_NEWSETELEM/DELSETELEM. */
void nc_elems_msg(struct nc_batch *b, struct nftnl_set *s, uint16_t type);

#endif
