/* kernel_main, where boot.S hands over, and the shell. */

#include "kernel.h"
#include "programs.h"
#include "x86.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

/* The start of the Multiboot information: all that 1K OS reads of it. */
struct multiboot_info {
    uint32_t flags;         /* bit 0: mem_lower and mem_upper are valid */
    uint32_t mem_lower;     /* KiB of memory below 1 MiB */
    uint32_t mem_upper;     /* KiB of memory from 1 MiB up */
};

static const struct program {
    const char *key;        /* what to type at the prompt */
    const char *title;      /* NULL: a hidden program, not in the menu */
    int (*main)(void);
} programs[] = {
    { "1", "multiplication table", multiplication_table },
    { "2", "counter", counter },
    { "3", "echo", echo },
    { "4", "Fibonacci numbers", fibonacci },
    { "5", "prime numbers", primes },
    { "6", "calculator", calculator },
    { "7", "factorials", factorials },
    { "8", "greatest common divisor", gcd },
    { "9", "about 1K OS", about },
    { "f", NULL, fault },   /* touches kernel memory from ring 3, to show that only it dies */
};

/* The EXIT hypercall: minikvm ends the VM; under QEMU, -device isa-debug-exit,iobase=0x500 does. */
__attribute__((noreturn)) static void power_off(void)
{
    kprintf("1K OS: power off\n");
    outb(0x500, 0);
    panic("still running after the power-off hypercall (no minikvm or isa-debug-exit?)");
}

/* Runs one program in ring 3 in an address space of its own, and cleans up after it. */
static void run_program(int (*main)(void))
{
    pte_t *root = user_space_create();
    write_cr3(V2P(root));
    run_user((uintptr_t)user_start, USER_START_SP, (uintptr_t)main);
    /* Back from ring 3 (the exit code is not used: there is no $? to keep it in). */
    write_cr3(V2P(kernel_root));
    sti();      /* we came back through an interrupt gate, which turned interrupts off */
    user_space_free(root);
}

static void shell(void)
{
    char line[80];

    for (;;) {
        kprintf("\n1K OS menu:\n");
        for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++)
            if (programs[i].title)
                kprintf("  %s  %s\n", programs[i].key, programs[i].title);
        kprintf("  0  power off\n");
        kprintf("choice> ");

        console_readline(line, sizeof line);
        if (line[0] == '\0')
            continue;
        if (strcmp(line, "0") == 0)
            power_off();

        const struct program *chosen = NULL;
        for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++)
            if (strcmp(line, programs[i].key) == 0)
                chosen = &programs[i];
        if (chosen)
            run_program(chosen->main);
        else
            kprintf("unknown choice \"%s\": type one of the numbers in the menu\n", line);
    }
}

void kernel_main(uint32_t magic, uint32_t multiboot_info)
{
    console_init();
    kprintf("\n1K OS booting\n");

    /* The Multiboot information lies in low memory, which the kernel sees at P2V. */
    uintptr_t mem_end = 4 * 1024 * 1024;
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
        kprintf("  not started by a Multiboot loader (eax=0x%08x); assuming 4 MiB of memory\n", magic);
    } else {
        const struct multiboot_info *mbi = P2V(multiboot_info);
        if (mbi->flags & 1) {
            mem_end = 0x100000 + mbi->mem_upper * 1024;
            kprintf("  memory: %u KiB (from the Multiboot information)\n", mbi->mem_lower + mbi->mem_upper);
        }
    }

    cpu_init();
    kprintf("  GDT, TSS and IDT loaded: kernel code 0x%x, user code 0x%x, system calls on int 0x80\n",
            KERNEL_CS, USER_CS);

    /* boot.S also mapped the kernel at its physical address (entry 0 of the root table), to
     * survive the moment paging went on. Nothing needs that any more; without it, a stray null
     * pointer faults. */
    kernel_root[0] = 0;
    write_cr3(V2P(kernel_root));
    kprintf("  paging on (CR0=0x%08lx): kernel at 0x%08lx, " PAGING_ROOT_NAME " at physical 0x%08lx\n",
            read_cr0(), (unsigned long)(KERNEL_BASE + 0x100000), read_cr3());

    memory_init(mem_end);
    kprintf("  %u free pages of 4 KiB for programs\n", memory_free_pages());

    interrupts_init();
    console_enable_input_interrupts();
    sti();
    kprintf("  timer: PIT at %u Hz on IRQ 0; console: COM1 16550 with input on IRQ 4\n", TIMER_HZ);

    shell();
}
