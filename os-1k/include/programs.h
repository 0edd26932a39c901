/* The user programs' entry points, for the shell's table. These are addresses in the user image
 * (around USER_BASE): the kernel never calls them, it starts them in ring 3 through user_start. */
#ifndef PROGRAMS_H
#define PROGRAMS_H

void user_start(int (*main)(void));

int multiplication_table(void);
int counter(void);
int echo(void);
int fibonacci(void);
int primes(void);
int calculator(void);
int factorials(void);
int gcd(void);
int about(void);
int fault(void);

#endif
