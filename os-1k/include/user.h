/* The user library: what the programs in user/ may call. All of it runs in ring 3; anything that
 * needs the kernel goes through a system call (int $0x80). */
#ifndef USER_H
#define USER_H

#include <stdbool.h>
#include <stdint.h>
#include "syscall.h"

__attribute__((noreturn)) void exit(int code);
int write(const char *buf, int len);
int read(char *buf, int size);      /* one line, edited by the kernel; returns its length */
uint32_t uptime(void);              /* timer ticks since boot */
void sleep(uint32_t ticks);
int info(struct sysinfo *info);

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool streq(const char *a, const char *b);

/* Reads a decimal number with an optional sign from *s, after any spaces, and moves *s past it. */
enum parse_result { PARSE_OK, PARSE_NO_NUMBER, PARSE_TOO_BIG };
enum parse_result parse_int(const char **s, int32_t *value);
void skip_spaces(const char **s);

#endif
