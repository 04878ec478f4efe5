#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    size_t backlog;
    bool stopping;
    unsigned n;
    pthread_t *threads;
};

static void *worker_main(void *arg)
{
    struct workers *w = arg;

    for (;;) {
        struct job *job;
        pthread_mutex_lock(&w->lock);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        job = w->head;
        if (!job) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        w->head = job->next;
        if (!w->head)
            w->tail = NULL;
        w->backlog--;
        pthread_mutex_unlock(&w->lock);
        job->next = NULL;
        job->run(job);
    }
}

int workers_new(const char *name, unsigned threads, struct workers **out)
{
    struct workers *w = calloc(1, sizeof(*w));
    sigset_t all, old;
    int rc = 0;

    (void)name;
    if (!w)
        return -ENOMEM;
    w->threads = calloc(threads, sizeof(pthread_t));
    if (!w->threads) {
        free(w);
        return -ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    /* Signals belong to the main loop (signalfd): workers never take them. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < threads; i++) {
        rc = -pthread_create(&w->threads[i], NULL, worker_main, w);
        if (rc < 0)
            break;
        w->n++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        workers_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void workers_submit(struct workers *w, struct job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->backlog++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

size_t workers_backlog(struct workers *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->backlog;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void workers_free(struct workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->n; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->threads);
    free(w);
}
