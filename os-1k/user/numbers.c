/* Programs 1, 2, 4, 5 and 7: numbers, printed. They run in ring 3 and use only the user library. */

#include "user.h"
#include "programs.h"

int multiplication_table(void)
{
    printf("multiplication table:\n");
    for (int a = 2; a <= 9; a++) {
        for (int b = 1; b <= 9; b++)
            printf("%d x %d = %d\n", a, b, a * b);
    }
    return 0;
}

/* Counts slowly, to show the timer at work: sleep() lets the kernel halt the CPU until enough
 * timer interrupts have come by. */
int counter(void)
{
    uint32_t start = uptime();
    printf("counting from 0 to 9, one number every 10 ticks:\n");
    for (int i = 0; i <= 9; i++) {
        printf("%d\n", i);
        sleep(10);
    }
    printf("done, that took %u ticks\n", uptime() - start);
    return 0;
}

int fibonacci(void)
{
    uint32_t a = 0, b = 1;
    printf("the first 15 Fibonacci numbers:\n");
    for (int i = 0; i < 15; i++) {
        printf(i == 0 ? "%u" : " %u", a);
        uint32_t next = a + b;
        a = b;
        b = next;
    }
    printf("\n");
    return 0;
}

static bool is_prime(int n)
{
    if (n < 2)
        return false;
    for (int d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

int primes(void)
{
    int count = 0;
    printf("prime numbers up to 100:\n");
    for (int n = 2; n <= 100; n++) {
        if (is_prime(n)) {
            printf(count == 0 ? "%d" : " %d", n);
            count++;
        }
    }
    printf("\nthat is %d primes\n", count);
    return 0;
}

/* n! grows fast: the loop stops at the first one that does not fit in 32 bits, which
 * __builtin_mul_overflow detects without needing a wider type. */
int factorials(void)
{
    uint32_t f = 1;
    printf("factorials:\n");
    for (uint32_t n = 0;; n++) {
        if (n > 0 && __builtin_mul_overflow(f, n, &f)) {
            printf("%u! does not fit in 32 bits (more than 4294967295), so we stop at %u!\n", n, n - 1);
            break;
        }
        printf("%u! = %u\n", n, f);
    }
    return 0;
}
