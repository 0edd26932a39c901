/* A small printf engine: %d %u %x %c %s %%, with an optional width and 0-padding (as in %08x),
 * and `l` for long (as in %lx): 32 bits on i386, 64 on x86-64, the size of an address.
 *
 * This header is included twice, by the kernel (lib.c) and by the user library (user/lib.c), and so
 * compiled into each: ring-3 code cannot call kernel functions, whose pages are supervisor-only. */
#ifndef FORMAT_H
#define FORMAT_H

#include <stdarg.h>
#include <stdint.h>

typedef void (*emit_fn)(char c, void *ctx);

static void format_number(emit_fn emit, void *ctx, unsigned long value, unsigned base,
                          int negative, int width, char pad)
{
    char digits[20];    /* 18446744073709551615, the largest 64-bit number, has 20 digits */
    int n = 0;

    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value != 0);

    int len = n + (negative ? 1 : 0);
    if (negative && pad == '0')
        emit('-', ctx);         /* -0042, not 00-42 */
    for (; len < width; len++)
        emit(pad, ctx);
    if (negative && pad != '0')
        emit('-', ctx);
    while (n > 0)
        emit(digits[--n], ctx);
}

static void vformat(emit_fn emit, void *ctx, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(*fmt, ctx);
            continue;
        }
        fmt++;
        char pad = ' ';
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int is_long = (*fmt == 'l');
        if (is_long)
            fmt++;

        switch (*fmt) {
        case 'd': {
            long v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            /* 0 - v, unsigned, is the magnitude even for the most negative number, whose
             * negation does not fit in a signed type */
            unsigned long magnitude = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
            format_number(emit, ctx, magnitude, 10, v < 0, width, pad);
            break;
        }
        case 'u':
            format_number(emit, ctx, is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, 0,
                          width, pad);
            break;
        case 'x':
            format_number(emit, ctx, is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, 0,
                          width, pad);
            break;
        case 'c':
            emit((char)va_arg(ap, int), ctx);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int len = 0;
            while (s[len])
                len++;
            for (; len < width; len++)
                emit(' ', ctx);
            while (*s)
                emit(*s++, ctx);
            break;
        }
        case '%':
            emit('%', ctx);
            break;
        case '\0':
            return;     /* a lone % at the end */
        default:
            emit('%', ctx);
            emit(*fmt, ctx);
        }
    }
}

#endif
