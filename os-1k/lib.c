/* The few library functions the kernel needs. gcc may also call memset and memcpy on its own
 * (to copy or clear a large struct), so these two must exist under exactly these names. */

#include "kernel.h"
#include "format.h"

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static void emit_console(char c, void *ctx)
{
    (void)ctx;
    console_putc(c);
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(emit_console, NULL, fmt, ap);
    va_end(ap);
}
