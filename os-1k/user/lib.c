/* The user library. It is linked into the user image, so it runs in ring 3 like the programs. */

#include "user.h"
#include "programs.h"
#include "format.h"

/* The kernel starts every program here (see user_space_create), with the program's main function
 * as the argument on the stack, so that returning from main is the same as calling exit. */
void user_start(int (*main)(void))
{
    exit(main());
}

/* `long` and `uintptr_t` are register-sized: 32 bits on i386, 64 on x86-64. The registers are the
 * same ones, only wider (EAX/RAX, EBX/RBX, ECX/RCX). */
static long syscall(long number, uintptr_t arg1, uintptr_t arg2)
{
    long result;
    asm volatile("int $0x80"
                 : "=a"(result)
                 : "a"(number), "b"(arg1), "c"(arg2)
                 : "memory");   /* the kernel may have written to our memory (read, info) */
    return result;
}

void exit(int code)
{
    syscall(SYS_EXIT, (uintptr_t)code, 0);
    for (;;)
        ;   /* not reached: exit does not come back */
}

int write(const char *buf, int len)
{
    return (int)syscall(SYS_WRITE, (uintptr_t)buf, (uintptr_t)len);
}

int read(char *buf, int size)
{
    return (int)syscall(SYS_READ, (uintptr_t)buf, (uintptr_t)size);
}

uint32_t uptime(void)
{
    return (uint32_t)syscall(SYS_UPTIME, 0, 0);
}

void sleep(uint32_t ticks)
{
    syscall(SYS_SLEEP, ticks, 0);
}

int info(struct sysinfo *info)
{
    return (int)syscall(SYS_INFO, (uintptr_t)info, 0);
}

/* printf collects its output and hands it to the kernel in few write calls, not one per character:
 * every system call costs a trip into the kernel and back. */
struct out_buffer {
    char data[128];
    int len;
};

static void emit_buffered(char c, void *ctx)
{
    struct out_buffer *out = ctx;
    if (out->len == (int)sizeof out->data) {
        write(out->data, out->len);
        out->len = 0;
    }
    out->data[out->len++] = c;
}

int printf(const char *fmt, ...)
{
    struct out_buffer out;
    out.len = 0;    /* not "= {0}": gcc may clear a struct by calling memset, which is kernel code */
    va_list ap;
    va_start(ap, fmt);
    vformat(emit_buffered, &out, fmt, ap);
    va_end(ap);
    return write(out.data, out.len);
}

bool streq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

void skip_spaces(const char **s)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
}

enum parse_result parse_int(const char **s, int32_t *value)
{
    const char *p = *s;
    skip_spaces(&p);
    bool negative = false;
    if (*p == '-' || *p == '+')
        negative = (*p++ == '-');
    if (*p < '0' || *p > '9')
        return PARSE_NO_NUMBER;

    /* Collect the magnitude as unsigned: -2147483648 fits in 32 bits, +2147483648 does not. */
    uint32_t limit = negative ? 2147483648u : 2147483647u;
    uint32_t magnitude = 0;
    while (*p >= '0' && *p <= '9') {
        uint32_t digit = (uint32_t)(*p++ - '0');
        if (magnitude > (limit - digit) / 10)
            return PARSE_TOO_BIG;
        magnitude = magnitude * 10 + digit;
    }
    *value = negative ? (int32_t)(0u - magnitude) : (int32_t)magnitude;
    *s = p;
    return PARSE_OK;
}
