/*
 * fast_core.c -- scalar helpers, scanner tables, kernel selection, threads,
 * floating-point environment and the port-level group batch of the fast
 * engine.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* sysconf, pthreads */
#endif
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fast_internal.h"

#if defined(_OPENMP)
#include <omp.h>
#define FK_THREADING "openmp"
#elif defined(BITLET_FAST_PTHREADS)
#include <pthread.h>
#define FK_THREADING "pthreads"
#else
#define FK_THREADING "none"
#endif

#if !defined(_WIN32)
#include <unistd.h>
#endif

#if (defined(__x86_64__) || defined(__i386__) || defined(_M_X64)) && \
    (defined(__SSE__) || defined(_M_X64))
#include <xmmintrin.h>
#define FK_X86_CSR 1
#endif

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != -1
#error "the fast engine needs binary32 float arithmetic (FLT_EVAL_METHOD 0), e.g. SSE on x86"
#endif

/* ------------------------------------------------------------------ */
/* pack helpers (NUMERICS.md s.2, s.3)                                 */
/* ------------------------------------------------------------------ */

uint32_t fk_pack_fp32(int64_t acc, int32_t emax)
{
    return fk_pack_fp32_inline(acc, emax);
}

/* floor(acc / 2^quant) without signed shifts. */
int64_t fk_floor_shift(int64_t acc, uint32_t quant)
{
    if (acc >= 0)
        return (int64_t)((uint64_t)acc >> quant);
    uint64_t inv = ~(uint64_t)acc;          /* -acc - 1 >= 0 */
    return (int64_t)~(inv >> quant);
}

int64_t fk_saturate_fixed(int64_t r)
{
    const int64_t hi = ((int64_t)1 << FK_COLS) - 1;
    const int64_t lo = -((int64_t)1 << FK_COLS);
    return r > hi ? hi : (r < lo ? lo : r);
}

/* ------------------------------------------------------------------ */
/* scanner (NUMERICS.md s.4) and its tables                            */
/* ------------------------------------------------------------------ */

/* + padding: SIMD gathers read 4 bytes at an entry */
uint16_t fk_scan_tab[(1 << 15) + 2];
uint8_t fk_scan_tail[(1 << 8) + 4];
uint8_t fk_scan_small[1 << 15];

/* One step from p: the new p (window = 8 bits from p, zeros past bit 63). */
static int scan_step(uint64_t col, int p)
{
    uint32_t w = p < 64 ? (uint32_t)(col >> p) & ((1u << BITLET_WINDOW) - 1u) : 0u;
    uint32_t rest = w & (w - 1u);           /* clear the first 1 */
    if (rest == 0u)
        return p + BITLET_WINDOW;
    int second = 0;
    while (!((rest >> second) & 1u))
        second++;
    return p + second;
}

/* The scanner, one step at a time (the definition; builds the tables). */
int fk_scan_steps_slow(uint64_t col)
{
    int p = 0;
    int steps = 0;
    while (p <= FK_GROUP - 1) {
        p = scan_step(col, p);
        steps++;
    }
    return steps;
}

int bitlet_fast_scan_steps(uint64_t col)
{
    fk_tables_init();
    return fk_ops_current()->scan_col(col);
}

static void build_tables(void)
{
    /* tab[x]: the steps starting at p in [0, 8) on the 15 bits x (a window
     * from p <= 7 ends at bit 14) | where they leave p (8..15) << 8, so that
     * one addition advances both the step count and the position. */
    for (uint32_t x = 0; x < (1u << 15); x++) {
        int p = 0, steps = 0;
        while (p < BITLET_WINDOW) {
            p = scan_step(x, p);
            steps++;
        }
        fk_scan_tab[x] = (uint16_t)(steps | (p << 8));   /* p = advance, 8..15 */
    }
    /* small[x]: all the steps of a column whose 1s are all below bit 15 */
    for (uint32_t x = 0; x < (1u << 15); x++)
        fk_scan_small[x] = (uint8_t)fk_scan_steps_slow(x);
    /* tail[x]: from p in 57..63, x = col >> p has at most 7 bits; steps
     * move to second 1s inside x until a step of 8 ends the scan. */
    for (uint32_t x = 0; x < (1u << 8); x++) {
        int p = 0, steps = 0;
        for (;;) {
            int q = scan_step(x, p);
            steps++;
            if (q - p >= BITLET_WINDOW)
                break;
            p = q;
        }
        fk_scan_tail[x] = (uint8_t)steps;
    }
}

static volatile int tables_ready = 0;

#if defined(BITLET_FAST_PTHREADS)
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static void tables_once_fn(void) { build_tables(); tables_ready = 1; }
#endif

void fk_tables_init(void)
{
    if (tables_ready)
        return;
#if defined(BITLET_FAST_PTHREADS)
    pthread_once(&tables_once, tables_once_fn);
#elif defined(_OPENMP)
#pragma omp critical(bitlet_fast_tables)
    {
        if (!tables_ready) {
            build_tables();
            tables_ready = 1;
        }
    }
#else
    build_tables();
    tables_ready = 1;
#endif
}

/* ------------------------------------------------------------------ */
/* kernel selection                                                    */
/* ------------------------------------------------------------------ */

static const fk_ops_t *forced_ops = NULL;

const fk_ops_t *fk_ops_current(void)
{
    if (forced_ops != NULL)
        return forced_ops;
    const fk_ops_t *ops = fk_ops_avx512v();
    if (ops == NULL)
        ops = fk_ops_avx512();
    if (ops == NULL)
        ops = fk_ops_avx2();
    if (ops == NULL)
        ops = fk_ops_scalar();
    return ops;
}

const char *bitlet_fast_isa(void)
{
    return fk_ops_current()->name;
}

int bitlet_fast_set_isa(const char *name)
{
    const fk_ops_t *ops = NULL;
    if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0) {
        forced_ops = NULL;
        return 0;
    }
    if (strcmp(name, "scalar") == 0)
        ops = fk_ops_scalar();
    else if (strcmp(name, "avx2") == 0)
        ops = fk_ops_avx2();
    else if (strcmp(name, "avx512") == 0)
        ops = fk_ops_avx512();
    else if (strcmp(name, "avx512v") == 0)
        ops = fk_ops_avx512v();
    if (ops == NULL)
        return -1;
    forced_ops = ops;
    return 0;
}

int bitlet_fast_simd_compiled(void)
{
#if defined(BITLET_FAST_NO_SIMD)
    return 0;
#else
    return 1;
#endif
}

const char *bitlet_fast_threading(void)
{
    return FK_THREADING;
}

/* ------------------------------------------------------------------ */
/* threads                                                             */
/* ------------------------------------------------------------------ */

int bitlet_fast_max_threads(void)
{
#if defined(_OPENMP)
    return omp_get_num_procs();
#elif !defined(_WIN32) && defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#else
    return 1;
#endif
}

int bitlet_fast_default_threads(void)
{
    const char *env = getenv("BITLET_THREADS");
    if (env != NULL && env[0] != '\0') {
        char *end = NULL;
        long n = strtol(env, &end, 10);
        if (end == env || *end != '\0' || n < 1 || n > 4096)
            return -1;
        return (int)n;
    }
    return bitlet_fast_max_threads();
}

#define FK_MAX_THREADS 256

int fk_resolve_threads(int threads)
{
    if (threads <= 0)
        threads = bitlet_fast_default_threads();
    if (threads <= 0)
        threads = 1;
    if (threads > FK_MAX_THREADS)
        threads = FK_MAX_THREADS;
#if !defined(_OPENMP) && !defined(BITLET_FAST_PTHREADS)
    threads = 1;
#endif
    return threads;
}

#if defined(BITLET_FAST_PTHREADS) && !defined(_OPENMP)
/* Claims of a task counter: atomic where the compiler has the builtins,
 * else under the job's lock (any POSIX C99 compiler). */
#if defined(__GNUC__) || defined(__clang__)
#define FK_ATOMICS 1
#endif

static void cpu_relax(void)
{
#if defined(FK_X86_CSR)
    _mm_pause();
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ __volatile__("yield");
#endif
}

/* ---- one-shot threads (concurrent callers, and when the persistent
 * pool cannot start) -------------------------------------------------
 * A job that never waits for a thread that has not started: tasks are
 * claimed under a lock; the caller works too and, once every task is
 * claimed, waits only for the tasks in progress.  A worker the OS starts
 * late finds nothing to do and leaves; the last one out frees the job.
 * (On a busy machine this matters: barrier-style runtimes wait a whole
 * scheduling quantum for a descheduled thread.) */
typedef struct {
    fk_task_fn fn;
    void *ctx;
    int64_t n, next;
    int busy;        /* tasks in progress */
    int refs;        /* the caller + workers that have not left */
    pthread_mutex_t lock;
    pthread_cond_t idle;
} spawn_t;

typedef struct {
    spawn_t *job;
    int worker;
} spawn_arg_t;

static void spawn_release(spawn_t *job)
{
    /* called with the lock held; frees the job if this was the last user */
    int last = --job->refs == 0;
    pthread_mutex_unlock(&job->lock);
    if (last) {
        pthread_mutex_destroy(&job->lock);
        pthread_cond_destroy(&job->idle);
        free(job);
    }
}

/* Claim and run tasks until none is left; returns with the lock held. */
static void spawn_work(spawn_t *job, int worker)
{
    pthread_mutex_lock(&job->lock);
    while (job->next < job->n) {
        int64_t task = job->next++;
        job->busy++;
        pthread_mutex_unlock(&job->lock);
        job->fn(job->ctx, task, worker);
        pthread_mutex_lock(&job->lock);
        if (--job->busy == 0 && job->next >= job->n)
            pthread_cond_broadcast(&job->idle);
    }
}

static void *spawn_worker(void *arg)
{
    spawn_arg_t a = *(spawn_arg_t *)arg;
    free(arg);
    fk_fpenv_t env;
    fk_fpenv_enter(&env);
    spawn_work(a.job, a.worker);
    fk_fpenv_leave(&env);
    spawn_release(a.job);
    return NULL;
}

static int spawn_run(int threads, int64_t n, fk_task_fn fn, void *ctx)
{
    spawn_t *job = (spawn_t *)calloc(1, sizeof(spawn_t));
    if (job == NULL)
        return -1;
    job->fn = fn;
    job->ctx = ctx;
    job->n = n;
    job->refs = 1;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->idle, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int w = 1; w < threads; w++) {
        spawn_arg_t *a = (spawn_arg_t *)malloc(sizeof(spawn_arg_t));
        if (a == NULL)
            break;
        a->job = job;
        a->worker = w;
        pthread_mutex_lock(&job->lock);
        job->refs++;
        pthread_mutex_unlock(&job->lock);
        pthread_t tid;
        if (pthread_create(&tid, &attr, spawn_worker, a) != 0) {
            free(a);
            pthread_mutex_lock(&job->lock);
            job->refs--;
            pthread_mutex_unlock(&job->lock);
            break;
        }
    }
    pthread_attr_destroy(&attr);
    spawn_work(job, 0);
    while (job->busy > 0)
        pthread_cond_wait(&job->idle, &job->lock);
    spawn_release(job);
    return 0;
}

/* ---- the persistent pool ---------------------------------------------
 * Workers started once (on the first parallel call, more when a call asks
 * for more threads) and kept: a layer runs several parallel steps, and
 * starting threads for each cost tens of microseconds per step.  One
 * caller at a time owns the pool (a Python thread calling while another
 * one's job runs gets one-shot threads, spawn_run).  A job keeps the
 * property above: the caller claims tasks too, and waits only for the
 * workers that joined the job (active); workers join under the lock, at
 * most `want` of them, until the caller closes the job, so none is left
 * inside a job when its caller returns.  An idle worker spins for 2 ms
 * and then sleeps: the next step of a layer comes within microseconds, the
 * next layer of a model after the Python between calls (0.1-1 ms); a
 * sleeping worker's CPU, when it is an idle virtual CPU, took up to ~10 ms
 * to wake on a KVM guest (measured: a 1x1 conv's 6 ms call then ran on
 * the caller alone, 12 ms).
 * fork: the child (one thread, no workers) drops the pool and starts a
 * new one when it needs it.  Exit: the workers are stopped and joined
 * (unless a caller is inside a job then). */
#define POOL_SPIN_NS 2000000      /* how long an idle worker spins (2 ms) */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;          /* workers: a new job or shutdown        */
    pthread_cond_t done;          /* caller: the last active worker left   */
    pthread_mutex_t owner;        /* held by the caller that owns the pool */
    pthread_t tid[FK_MAX_THREADS];
    int started;                  /* workers running                       */
    int shutdown;
    /* the current job (written under lock by its caller) */
    unsigned long gen;            /* job number, read unlocked by spinners */
    fk_task_fn fn;
    void *ctx;
    int64_t n;
    int64_t next;                 /* next task to claim                    */
    int want;                     /* workers that may join                 */
    int joined;                   /* workers that joined                   */
    int active;                   /* joined and not yet left               */
    int closed;                   /* the caller is done claiming           */
} pool_t;

static pool_t *the_pool = NULL;

/* The job number, read without the lock (a spinning worker). */
static unsigned long pool_gen(pool_t *p)
{
#if defined(FK_ATOMICS)
    return __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
#else
    return *(volatile unsigned long *)&p->gen;
#endif
}

static void pool_bump(pool_t *p)   /* under the lock */
{
#if defined(FK_ATOMICS)
    __atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELEASE);
#else
    p->gen++;
#endif
}
static pthread_mutex_t pool_make_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* Next task of the pool's job or -1. */
static int64_t pool_claim(pool_t *p)
{
#if defined(FK_ATOMICS)
    int64_t t = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
    return t < p->n ? t : -1;
#else
    int64_t t = -1;
    pthread_mutex_lock(&p->lock);
    if (p->next < p->n)
        t = p->next++;
    pthread_mutex_unlock(&p->lock);
    return t;
#endif
}

static void *pool_worker(void *arg)
{
    pool_t *p = (pool_t *)arg;
    unsigned long seen;
    fk_fpenv_t env;
    fk_fpenv_enter(&env);         /* this thread's own FP state, kept */
    pthread_mutex_lock(&p->lock);
    seen = p->gen;
    for (;;) {
        if (p->shutdown)
            break;
        if (p->gen != seen) {
            seen = p->gen;
            if (!p->closed && p->joined < p->want) {
                int worker = ++p->joined;
                fk_task_fn fn = p->fn;
                void *ctx = p->ctx;
                p->active++;
                pthread_mutex_unlock(&p->lock);
                fk_fpenv_enter(&env);
                for (int64_t t; (t = pool_claim(p)) >= 0;)
                    fn(ctx, t, worker);
                pthread_mutex_lock(&p->lock);
                if (--p->active == 0 && p->closed)
                    pthread_cond_signal(&p->done);
            }
            continue;
        }
        /* idle: spin a little outside the lock, then sleep */
        pthread_mutex_unlock(&p->lock);
        for (int64_t end = now_ns() + POOL_SPIN_NS; pool_gen(p) == seen;) {
            for (int i = 0; i < 64 && pool_gen(p) == seen; i++)
                cpu_relax();
            if (now_ns() > end)
                break;
        }
        pthread_mutex_lock(&p->lock);
        while (p->gen == seen && !p->shutdown)
            pthread_cond_wait(&p->wake, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* fork child: one thread, no workers; the parent's pool (and its locks,
 * perhaps held by a parent thread) is left behind. */
static void pool_atfork_child(void)
{
    the_pool = NULL;
    pthread_mutex_init(&pool_make_lock, NULL);
}

static void pool_register(void)
{
    pthread_atfork(NULL, NULL, pool_atfork_child);
}

static pool_t *pool_get(void)
{
#if defined(FK_ATOMICS)
    pool_t *p = __atomic_load_n(&the_pool, __ATOMIC_ACQUIRE);
#else
    pool_t *p = the_pool;
#endif
    if (p != NULL)
        return p;
    pthread_once(&pool_once, pool_register);
    pthread_mutex_lock(&pool_make_lock);
    p = the_pool;
    if (p == NULL) {
        p = (pool_t *)calloc(1, sizeof(pool_t));
        if (p != NULL) {
            pthread_mutex_init(&p->lock, NULL);
            pthread_cond_init(&p->wake, NULL);
            pthread_cond_init(&p->done, NULL);
            pthread_mutex_init(&p->owner, NULL);
#if defined(FK_ATOMICS)
            __atomic_store_n(&the_pool, p, __ATOMIC_RELEASE);
#else
            the_pool = p;
#endif
        }
    }
    pthread_mutex_unlock(&pool_make_lock);
    return p;
}

/* Run a job on the pool; -1 if it is owned by another caller (or cannot
 * be made): the caller then runs it another way. */
static int pool_run(int threads, int64_t n, fk_task_fn fn, void *ctx)
{
    pool_t *p = pool_get();
    if (p == NULL || pthread_mutex_trylock(&p->owner) != 0)
        return -1;
    pthread_mutex_lock(&p->lock);
    while (p->started < threads - 1 && !p->shutdown) {
        if (pthread_create(&p->tid[p->started], NULL, pool_worker, p) != 0)
            break;
        p->started++;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->next = 0;
    p->want = threads - 1 < p->started ? threads - 1 : p->started;
    p->joined = 0;
    p->active = 0;
    p->closed = 0;
    pool_bump(p);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int64_t t; (t = pool_claim(p)) >= 0;)
        fn(ctx, t, 0);
    pthread_mutex_lock(&p->lock);
    p->closed = 1;                /* no worker joins from now on */
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&p->owner);
    return 0;
}

/* Process exit: stop and join the workers, unless a job is running. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((destructor))
#endif
static void pool_shutdown(void)
{
    pool_t *p = the_pool;
    if (p == NULL || pthread_mutex_trylock(&p->owner) != 0)
        return;
    pthread_mutex_lock(&p->lock);
    p->shutdown = 1;
    pool_bump(p);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int w = 0; w < p->started; w++)
        pthread_join(p->tid[w], NULL);
    p->started = 0;
    pthread_mutex_unlock(&p->owner);
}
#endif

/* Run fn(ctx, task, worker) for every task in [0, n) on `threads` workers
 * (worker in [0, threads)).  Tasks are handed out dynamically; results must
 * not depend on which worker runs a task. */
void fk_parallel_for(int threads, int64_t n, fk_task_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (threads > n)
        threads = (int)n;
    if (threads <= 1) {
        for (int64_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
    {
        fk_fpenv_t env;
        fk_fpenv_enter(&env);
        int worker = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < n; i++)
            fn(ctx, i, worker);
        fk_fpenv_leave(&env);
    }
#elif defined(BITLET_FAST_PTHREADS)
    if (pool_run(threads, n, fn, ctx) != 0 && spawn_run(threads, n, fn, ctx) != 0) {
        for (int64_t i = 0; i < n; i++)
            fn(ctx, i, 0);
    }
#else
    for (int64_t i = 0; i < n; i++)
        fn(ctx, i, 0);
#endif
}

/* ------------------------------------------------------------------ */
/* floating-point environment                                          */
/* ------------------------------------------------------------------ */

/* Group sums are binary32 round-to-nearest-even with subnormals: clear
 * flush-to-zero / denormals-are-zero and directed rounding that a library
 * in the process may have set, restore on leave. */
void fk_fpenv_enter(fk_fpenv_t *env)
{
    env->changed = 0;
    env->saved = 0;
#if defined(FK_X86_CSR)
    unsigned int csr = _mm_getcsr();
    unsigned int want = csr & ~(0x8000u | 0x0040u | 0x6000u);  /* FTZ, DAZ, RC */
    env->saved = csr;
    if (want != csr) {
        _mm_setcsr(want);
        env->changed = 1;
    }
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    uint64_t want = fpcr & ~((uint64_t)1 << 24 | (uint64_t)3 << 22);  /* FZ, RMode */
    env->saved = (unsigned int)fpcr;
    if (want != fpcr) {
        __asm__ __volatile__("msr fpcr, %0" : : "r"(want));
        env->changed = 1;
    }
#endif
}

void fk_fpenv_leave(const fk_fpenv_t *env)
{
    if (!env->changed)
        return;
#if defined(FK_X86_CSR)
    _mm_setcsr(env->saved);
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    uint64_t fpcr = env->saved;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
#endif
}

/* ------------------------------------------------------------------ */
/* memory                                                              */
/* ------------------------------------------------------------------ */

void *fk_alloc(size_t bytes)
{
    /* over-allocate and align by hand (portable, no aligned_alloc) */
    size_t total = bytes + FK_ALIGN + sizeof(void *);
    if (total < bytes)
        return NULL;
    unsigned char *raw = (unsigned char *)calloc(1, total);
    if (raw == NULL)
        return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(void *));
    uintptr_t aligned = (start + FK_ALIGN - 1) & ~(uintptr_t)(FK_ALIGN - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

void fk_free(void *p)
{
    if (p != NULL)
        free(((void **)p)[-1]);
}

/* ------------------------------------------------------------------ */
/* independent groups                                                  */
/* ------------------------------------------------------------------ */

#define GROUPS_PER_TASK 1024

typedef struct {
    const fk_ops_t *ops;
    fk_groups_t b;
    int64_t n;
} groups_job_t;

static void groups_task(void *ctx, int64_t task, int worker)
{
    groups_job_t *job = (groups_job_t *)ctx;
    int64_t i0 = task * GROUPS_PER_TASK;
    int64_t i1 = i0 + GROUPS_PER_TASK < job->n ? i0 + GROUPS_PER_TASK : job->n;
    (void)worker;
    job->ops->groups(&job->b, i0, i1);
}

int bitlet_fast_group_batch(int64_t n, const uint8_t *w_sig, const uint8_t *w_exp,
                            const uint32_t *w_abs, const uint32_t *a_word,
                            const uint8_t *isfix, const uint32_t *prune,
                            const uint8_t *quant, bitlet_fast_result_t *out,
                            int want_cycles, int threads)
{
    for (int64_t i = 0; i < n; i++) {
        if (isfix[i] && quant[i] > BITLET_QUANT_MAX)
            return -1;
    }
    fk_tables_init();
    groups_job_t job;
    job.ops = fk_ops_current();
    job.b.w_sig = w_sig;
    job.b.w_exp = w_exp;
    job.b.w_abs = w_abs;
    job.b.a_word = a_word;
    job.b.isfix = isfix;
    job.b.prune = prune;
    job.b.quant = quant;
    job.b.out = out;
    job.b.want_cycles = want_cycles;
    job.n = n;
    fk_fpenv_t env;
    fk_fpenv_enter(&env);
    fk_parallel_for(fk_resolve_threads(threads), (n + GROUPS_PER_TASK - 1) / GROUPS_PER_TASK,
                    groups_task, &job);
    fk_fpenv_leave(&env);
    return 0;
}
