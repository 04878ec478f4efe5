/* A PKCS#11 module that records which program loaded it, then hands over to
 * the real module (CANARY_MODULE, built in). tests/tpm/who-loads puts it in
 * place of p11-kit's tpm2-pkcs11 registration inside a private mount
 * namespace. Not part of the build: who-loads compiles it. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#ifndef CANARY_MODULE
#error "build with -DCANARY_MODULE=\"/path/to/real/module.so\""
#endif
#ifndef CANARY_LOG
#error "build with -DCANARY_LOG=\"/path/to/log\""
#endif

typedef unsigned long CK_RV;
typedef CK_RV (*get_function_list_fn)(void *);

__attribute__((constructor)) static void canary_note(void)
{
    char exe[512] = "?", line[640];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    int fd, len;

    if (n > 0)
        exe[n] = '\0';
    fd = open(CANARY_LOG, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return;
    len = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), exe);
    if (len > 0 && write(fd, line, (size_t)len) < 0)
        len = 0;
    close(fd);
}

CK_RV C_GetFunctionList(void *list);

CK_RV C_GetFunctionList(void *list)
{
    void *h = dlopen(CANARY_MODULE, RTLD_NOW | RTLD_LOCAL);
    get_function_list_fn f;

    if (h == NULL)
        return 5; /* CKR_GENERAL_ERROR */
    *(void **)(&f) = dlsym(h, "C_GetFunctionList");
    return f != NULL ? f(list) : 5;
}
