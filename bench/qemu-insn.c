/* A QEMU TCG plugin for bench/instructions.sh: counts the guest instructions a user-mode program
 * executes (all its threads) and writes the running total to a file every 50 ms and at exit:
 *   qemu-arm -plugin ./libqemu-insn.so,out=FILE PROGRAM ...
 * With syms=1 it also keeps a count per translated block, under the ELF symbol of the block's
 * first instruction; creating FILE.snap makes it write those counts ("instructions symbol" per
 * line, one line per block, unsorted) to FILE.syms and remove FILE.snap.
 * Debian's qemu-user (the dynamic build; not qemu-user-static, which cannot load plugins) has
 * plugin support but ships no plugin and no header, so this file declares the few functions of
 * QEMU's plugin API (version 1, as in QEMU 7.2) that it uses.
 *   gcc -O2 -shared -fPIC -o libqemu-insn.so bench/qemu-insn.c -lpthread */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*vcpu_udata_cb)(unsigned int, void *);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb, int flags, void *);
struct qemu_plugin_insn;
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
static uint64_t count;
static const char *out = "/tmp/insncount";
static int syms;
struct block { const char *sym; uint64_t n, execs; struct block *next; };
static struct block *blocks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void exec_cb(unsigned int vcpu, void *n) { (void)vcpu; __atomic_fetch_add(&count, (uint64_t)(uintptr_t)n, __ATOMIC_RELAXED); }
static void exec_sym_cb(unsigned int vcpu, void *p) {
    struct block *b = p;
    (void)vcpu;
    __atomic_fetch_add(&count, b->n, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->execs, 1, __ATOMIC_RELAXED);
}
static void trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (!syms) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_cb, 0 /* QEMU_PLUGIN_CB_NO_REGS */, (void *)(uintptr_t)n);
        return;
    }
    struct block *b = calloc(1, sizeof *b);
    b->n = n;
    b->sym = n ? qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0)) : NULL;
    pthread_mutex_lock(&lock);
    b->next = blocks; blocks = b;
    pthread_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_sym_cb, 0, b);
}
static void snapshot(void) {
    char snap[4096], tmp[4096], dst[4096];
    snprintf(snap, sizeof snap, "%s.snap", out);
    if (access(snap, F_OK)) return;
    snprintf(tmp, sizeof tmp, "%s.syms.tmp", out);
    snprintf(dst, sizeof dst, "%s.syms", out);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    pthread_mutex_lock(&lock);
    for (struct block *b = blocks; b; b = b->next) {
        uint64_t e = __atomic_load_n(&b->execs, __ATOMIC_RELAXED);
        if (e) fprintf(f, "%llu %s\n", (unsigned long long)(e * b->n), b->sym ? b->sym : "?");
    }
    pthread_mutex_unlock(&lock);
    fclose(f);
    rename(tmp, dst);
    unlink(snap);
}
static void save(void) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (f) { fprintf(f, "%llu\n", (unsigned long long)__atomic_load_n(&count, __ATOMIC_RELAXED)); fclose(f); rename(tmp, out); }
}
static void at_exit(qemu_plugin_id_t id, void *u) { (void)id; (void)u; save(); }
static void *writer(void *a) {
    (void)a;
    for (;;) { save(); if (syms) snapshot(); usleep(50000); }
    return NULL;
}
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "out=", 4)) out = strdup(argv[i] + 4);
        if (!strcmp(argv[i], "syms=1")) syms = 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    return 0;
}
