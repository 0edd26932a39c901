/* A small printf engine: %d %u %x %c %s %%, with an optional width and 0-padding (as in %08x).
 *
 * This header is included twice, by the kernel (lib.c) and by the user library (user/lib.c), and so
 * compiled into each: ring-3 code cannot call kernel functions, whose pages are supervisor-only. */
#ifndef FORMAT_H
#define FORMAT_H

#include <stdarg.h>
#include <stdint.h>

typedef void (*emit_fn)(char c, void *ctx);

static void format_number(emit_fn emit, void *ctx, uint32_t value, uint32_t base,
                          int negative, int width, char pad)
{
    char digits[10];    /* 4294967295 has 10 digits */
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

        switch (*fmt) {
        case 'd': {
            int v = va_arg(ap, int);
            /* 0u - v is the magnitude even for INT_MIN, whose negation does not fit in an int */
            uint32_t magnitude = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
            format_number(emit, ctx, magnitude, 10, v < 0, width, pad);
            break;
        }
        case 'u':
            format_number(emit, ctx, va_arg(ap, uint32_t), 10, 0, width, pad);
            break;
        case 'x':
            format_number(emit, ctx, va_arg(ap, uint32_t), 16, 0, width, pad);
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
