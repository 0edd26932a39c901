/* Physical memory and address spaces.
 *
 * The kernel sees the first 4 MiB of physical memory at KERNEL_BASE (boot.S mapped it), so a
 * physical page at pa is at P2V(pa) for the kernel. The free pages after the kernel are kept in a
 * list threaded through the pages themselves: each free page's first word points to the next.
 *
 * The same code serves both flavours: a page-table walk is a loop over PT_LEVELS tables, each
 * indexed by PT_INDEX_BITS bits of the address (arch.h). i386: 2 levels of 1024 4-byte entries,
 * 10 + 10 + 12 = 32 bits. x86-64: 4 levels (PML4, PDPT, page directory, page table) of 512
 * 8-byte entries, 9 + 9 + 9 + 9 + 12 = 48 bits. */

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

void memory_init(uintptr_t mem_end)
{
    if (mem_end > 4 * 1024 * 1024)
        mem_end = 4 * 1024 * 1024;      /* all that boot.S mapped for the kernel */
    uintptr_t pa = (V2P(kernel_end) + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
    for (; pa + PAGE_SIZE <= mem_end; pa += PAGE_SIZE)
        free_page(P2V(pa));
}

uint32_t memory_free_pages(void)
{
    return free_count;
}

#define PT_ENTRIES  (1u << PT_INDEX_BITS)
#define PTE_ADDR    (~(pte_t)(PAGE_SIZE - 1))     /* the physical address in an entry */

/* The index of va's entry in its table at `level` (1: a page table, PT_LEVELS: the root). */
static unsigned pt_index(uintptr_t va, int level)
{
    return (unsigned)(va >> (12 + PT_INDEX_BITS * (level - 1))) & (PT_ENTRIES - 1);
}

/* Maps the user page va to `page` in the address space `root`, creating the tables on the way
 * down. Every level says PTE_U: the CPU lets ring 3 in only if all the entries of a walk do. */
static void map(pte_t *root, uintptr_t va, void *page)
{
    pte_t *table = root;
    for (int level = PT_LEVELS; level > 1; level--) {
        pte_t *entry = &table[pt_index(va, level)];
        if (!(*entry & PTE_P))
            *entry = V2P(alloc_page()) | PTE_P | PTE_W | PTE_U;
        table = P2V(*entry & PTE_ADDR);
    }
    table[pt_index(va, 1)] = V2P(page) | PTE_P | PTE_W | PTE_U;
}

/* A fresh address space for one run of a program:
 *   USER_BASE ..             a private copy of the user image (code and data of all programs)
 *   .. USER_STACK_TOP        its stack
 *   KERNEL_BASE ..           the kernel, shared by all, present but without PTE_U: a system call
 *                            or interrupt finds the kernel there, a program touching it faults.
 * The kernel's half of the root table is a copy of the kernel's own, so the tables below it are
 * shared. */
pte_t *user_space_create(void)
{
    pte_t *root = alloc_page();
    for (unsigned i = pt_index(KERNEL_BASE, PT_LEVELS); i < PT_ENTRIES; i++)
        root[i] = kernel_root[i];

    uintptr_t size = (uintptr_t)(user_image_end - user_image);
    for (uintptr_t offset = 0; offset < size; offset += PAGE_SIZE) {
        char *page = alloc_page();
        memcpy(page, user_image + offset, size - offset < PAGE_SIZE ? size - offset : PAGE_SIZE);
        map(root, USER_BASE + offset, page);
    }
    for (int i = 1; i <= USER_STACK_PAGES; i++)
        map(root, USER_STACK_TOP - i * PAGE_SIZE, alloc_page());
    return root;
}

/* Frees what the entries [0, end) of `table` at `level` lead to: at level 1 the pages, above it
 * the tables below and what they lead to. */
static void free_below(pte_t *table, int level, unsigned end)
{
    for (unsigned i = 0; i < end; i++) {
        if (!(table[i] & PTE_P))
            continue;
        pte_t *next = P2V(table[i] & PTE_ADDR);
        if (level > 1)
            free_below(next, level - 1, PT_ENTRIES);
        free_page(next);
    }
}

/* Gives back every page of an address space that is no longer loaded in CR3: the user half of
 * the root table (the kernel's half is shared, and stays). */
void user_space_free(pte_t *root)
{
    free_below(root, PT_LEVELS, pt_index(KERNEL_BASE, PT_LEVELS));
    free_page(root);
}

/* Is [addr, addr + len) memory the running program owns? The kernel checks every pointer a system
 * call hands it: a program must not get the kernel to read or write kernel memory for it. */
bool user_memory_ok(uintptr_t addr, uintptr_t len)
{
    uintptr_t end = addr + len;
    uintptr_t image_end = USER_BASE + (uintptr_t)(user_image_end - user_image);
    uintptr_t stack_bottom = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
    if (end < addr)
        return false;   /* wrapped around the top of the address space */
    return (addr >= USER_BASE && end <= image_end) || (addr >= stack_bottom && end <= USER_STACK_TOP);
}
