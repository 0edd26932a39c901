/* Physical memory and address spaces.
 *
 * The kernel sees the first 4 MiB of physical memory at KERNEL_BASE (boot.S mapped it), so a
 * physical page at pa is at P2V(pa) for the kernel. The free pages after the kernel are kept in a
 * list threaded through the pages themselves: each free page's first word points to the next. */

#include "kernel.h"

extern char kernel_end[];                       /* kernel.ld: the end of the kernel's memory */
extern const char user_image[], user_image_end[];   /* kernel.ld: the user programs, as linked */

static void *free_list;
static uint32_t free_count;

static void free_page(void *page)
{
    *(void **)page = free_list;
    free_list = page;
    free_count++;
}

/* Returns a zeroed page (its kernel address). Only one program runs at a time and it gets back all
 * it used, so running out means a bug, or a machine with far too little memory. */
static void *alloc_page(void)
{
    void *page = free_list;
    if (page == NULL)
        panic("out of memory");
    free_list = *(void **)page;
    free_count--;
    return memset(page, 0, PAGE_SIZE);
}

void memory_init(uint32_t mem_end)
{
    if (mem_end > 4 * 1024 * 1024)
        mem_end = 4 * 1024 * 1024;      /* all that boot.S mapped for the kernel */
    uint32_t pa = (V2P(kernel_end) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    for (; pa + PAGE_SIZE <= mem_end; pa += PAGE_SIZE)
        free_page(P2V(pa));
}

uint32_t memory_free_pages(void)
{
    return free_count;
}

static void map(uint32_t *page_table, uint32_t va, void *page)
{
    page_table[(va >> 12) & 1023] = V2P(page) | PTE_P | PTE_W | PTE_U;
}

/* A fresh address space for one run of a program:
 *   USER_BASE ..             a private copy of the user image (code and data of all programs)
 *   .. USER_STACK_TOP        its stack
 *   KERNEL_BASE ..           the kernel, shared by all, present but without PTE_U: a system call
 *                            or interrupt finds the kernel there, a program touching it faults.
 * The stack starts with the arguments of user_start(main), as if user_start had been called. */
uint32_t *user_space_create(int (*main)(void))
{
    uint32_t *pgdir = alloc_page();
    uint32_t *page_table = alloc_page();
    pgdir[KERNEL_BASE >> 22] = kernel_pgdir[KERNEL_BASE >> 22];
    pgdir[USER_BASE >> 22] = V2P(page_table) | PTE_P | PTE_W | PTE_U;

    uint32_t size = user_image_end - user_image;
    for (uint32_t offset = 0; offset < size; offset += PAGE_SIZE) {
        char *page = alloc_page();
        memcpy(page, user_image + offset, size - offset < PAGE_SIZE ? size - offset : PAGE_SIZE);
        map(page_table, USER_BASE + offset, page);
    }

    uint32_t *stack_page = NULL;
    for (int i = 1; i <= USER_STACK_PAGES; i++) {
        void *page = alloc_page();
        map(page_table, USER_STACK_TOP - i * PAGE_SIZE, page);
        if (i == 1)
            stack_page = page;
    }
    stack_page[1023] = (uint32_t)main;      /* user_start's argument */
    stack_page[1022] = 0;                   /* its return address: it never returns */
    return pgdir;
}

/* Gives back every page of an address space that is no longer loaded in CR3. */
void user_space_free(uint32_t *pgdir)
{
    uint32_t *page_table = P2V(pgdir[USER_BASE >> 22] & ~(PAGE_SIZE - 1));
    for (int i = 0; i < 1024; i++)
        if (page_table[i] & PTE_P)
            free_page(P2V(page_table[i] & ~(PAGE_SIZE - 1)));
    free_page(page_table);
    free_page(pgdir);
}

/* Is [addr, addr + len) memory the running program owns? The kernel checks every pointer a system
 * call hands it: a program must not get the kernel to read or write kernel memory for it. */
bool user_memory_ok(uint32_t addr, uint32_t len)
{
    uint32_t end = addr + len;
    uint32_t image_end = USER_BASE + (uint32_t)(user_image_end - user_image);
    uint32_t stack_bottom = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
    if (end < addr)
        return false;   /* wrapped around 4 GiB */
    return (addr >= USER_BASE && end <= image_end) || (addr >= stack_bottom && end <= USER_STACK_TOP);
}
