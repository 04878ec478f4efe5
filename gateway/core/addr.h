/* addr.h: socket addresses as text for logs and JSON. */
#ifndef MTLSGW_ADDR_H
#define MTLSGW_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* "192.0.2.1:443" or "[2001:db8::1]:443" (what is not AF_INET is read as AF_INET6). */
void addr_format(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif
