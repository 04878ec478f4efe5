/*
 * workers.h: a pool of threads taking jobs from a queue.
 *
 * The daemon runs two: one for handshakes and token work (a TPM signs in tens
 * of milliseconds), one for traffic on established sessions, so a storm of
 * handshakes never delays a request on an open session.
 */
#ifndef MTLSGW_WORKERS_H
#define MTLSGW_WORKERS_H

#include <stddef.h>

struct workers;

struct job {
    void (*run)(struct job *job);
    struct job *next;
};

int workers_new(const char *name, unsigned threads, struct workers **out);
/* Queue a job; it runs once on some thread of the pool. */
void workers_submit(struct workers *w, struct job *job);
/* Jobs waiting (for metrics). */
size_t workers_backlog(struct workers *w);
/* Finish queued jobs, join the threads, free. */
void workers_free(struct workers *w);

#endif
