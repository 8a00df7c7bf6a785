/* A QEMU TCG plugin for bench/instructions.sh: counts the guest instructions a user-mode program
 * executes (all its threads) and writes the running total to a file every 50 ms and at exit:
 *   qemu-arm -plugin ./libqemu-insn.so,out=FILE PROGRAM ...
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
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
static uint64_t count;
static const char *out = "/tmp/insncount";
static void exec_cb(unsigned int vcpu, void *n) { (void)vcpu; __atomic_fetch_add(&count, (uint64_t)(uintptr_t)n, __ATOMIC_RELAXED); }
static void trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_cb, 0 /* QEMU_PLUGIN_CB_NO_REGS */, (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
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
    for (;;) { save(); usleep(50000); }
    return NULL;
}
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) if (!strncmp(argv[i], "out=", 4)) out = strdup(argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    return 0;
}
