/* Programs 3, 6 and 8: they read what the user types. read() returns one whole line: the kernel
 * echoes the keys and handles backspace while the program sleeps. */

#include "user.h"
#include "programs.h"

int echo(void)
{
    char line[80];
    printf("echo: type a line and I repeat it; \"quit\" ends\n");
    for (;;) {
        printf("echo> ");
        read(line, sizeof line);
        if (streq(line, "quit"))
            return 0;
        printf("you typed: %s\n", line);
    }
}

/* a op b, or why it cannot be done. Signed 32-bit arithmetic: the checks come first, because C
 * leaves overflow undefined, and the CPU faults on x / 0 and on INT_MIN / -1. */
static void calculate(int32_t a, char op, int32_t b)
{
    int32_t result;
    bool overflow = false;

    switch (op) {
    case '+':
        overflow = __builtin_add_overflow(a, b, &result);
        break;
    case '-':
        overflow = __builtin_sub_overflow(a, b, &result);
        break;
    case '*':
        overflow = __builtin_mul_overflow(a, b, &result);
        break;
    case '/':
        if (b == 0) {
            printf("error: division by zero\n");
            return;
        }
        overflow = (a == INT32_MIN && b == -1);     /* +2147483648 does not fit */
        if (!overflow)
            result = a / b;
        break;
    default:
        printf("error: unknown operator '%c'; use + - * /\n", op);
        return;
    }

    if (overflow)
        printf("error: overflow, the result does not fit in 32 bits\n");
    else
        printf("= %d\n", result);
}

int calculator(void)
{
    char line[80];
    printf("calculator: type <number> <op> <number>, op is one of + - * /, e.g. 12 * -3; q quits\n");
    for (;;) {
        printf("calc> ");
        read(line, sizeof line);
        const char *p = line;
        skip_spaces(&p);
        if (streq(p, "q"))
            return 0;
        if (*p == '\0')
            continue;

        int32_t a, b;
        enum parse_result ra = parse_int(&p, &a);
        skip_spaces(&p);
        char op = *p;
        if (op != '\0')
            p++;
        enum parse_result rb = parse_int(&p, &b);
        skip_spaces(&p);

        if (ra == PARSE_TOO_BIG || rb == PARSE_TOO_BIG)
            printf("error: number too big for 32 bits (-2147483648 to 2147483647)\n");
        else if (ra != PARSE_OK || rb != PARSE_OK || *p != '\0')
            printf("error: I understand <number> <op> <number>, e.g. 12 * -3 (q quits)\n");
        else
            calculate(a, op, b);
    }
}

/* Euclid: gcd(a, b) = gcd(b, a mod b), until the remainder is 0. */
static void euclid(uint32_t a, uint32_t b)
{
    uint32_t a0 = a, b0 = b;
    printf("gcd(%u, %u):\n", a0, b0);
    if (a == 0 && b == 0) {
        printf("  every number divides 0, so gcd(0, 0) is not defined\n");
        return;
    }
    while (b != 0) {
        printf("  %u = %u x %u + %u\n", a, a / b, b, a % b);
        uint32_t r = a % b;
        a = b;
        b = r;
    }
    printf("  so gcd(%u, %u) = %u\n", a0, b0, a);
}

int gcd(void)
{
    char line[80];
    printf("greatest common divisor, by Euclid's algorithm:\n");
    euclid(48, 18);
    euclid(1071, 462);
    euclid(17, 5);

    for (;;) {
        printf("your turn, two numbers (0 or more): ");
        read(line, sizeof line);
        const char *p = line;
        int32_t a, b;
        if (parse_int(&p, &a) == PARSE_OK && parse_int(&p, &b) == PARSE_OK && a >= 0 && b >= 0) {
            skip_spaces(&p);
            if (*p == '\0') {
                euclid((uint32_t)a, (uint32_t)b);
                return 0;
            }
        }
        printf("error: I need two numbers such as 84 36\n");
    }
}
