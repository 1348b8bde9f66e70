/* Startup and board support for the node's image on QEMU's mps2-an386: the vector table,
 * the reset handler (copy .data, zero .bss, enable the FPU), semihosting calls and an
 * instruction counter. With -icount shift=10 QEMU advances its clock 1,024 ns per
 * instruction; SysTick counts the board's 25 MHz clock, 25.6 ticks per instruction, so
 * the count is exact to one instruction (the counter's own wrap interrupt, every 655 k
 * instructions, adds about 15). */
#include "board.h"

#include <string.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06,
       SYS_EXIT_EXTENDED = 0x20 };

extern uint32_t _data_start, _data_end, _data_load, _bss_start, _bss_end, _stack_top;
int main(void);

static volatile uint32_t systick_wraps;

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int board_open(const char *path, int write) {
    const uint32_t args[3] = {(uint32_t)path, write ? 5u : 1u, strlen(path)}; /* "wb" / "rb" */
    return semihost(SYS_OPEN, args);
}

size_t board_read(int fd, void *data, size_t n) {
    const uint32_t args[3] = {(uint32_t)fd, (uint32_t)data, n};
    return n - (size_t)semihost(SYS_READ, args); /* the call returns the bytes not read */
}

int board_write(int fd, const void *data, size_t n) {
    const uint32_t args[3] = {(uint32_t)fd, (uint32_t)data, n};
    return semihost(SYS_WRITE, args) == 0 ? 0 : -1;
}

void board_close(int fd) {
    const uint32_t args[1] = {(uint32_t)fd};
    semihost(SYS_CLOSE, args);
}

void board_print(const char *text) {
    semihost(SYS_WRITE0, text);
    semihost(SYS_WRITE0, "\n");
}

uint64_t board_instructions(void) {
    uint32_t wraps, count;
    do { /* a wrap between the two reads would pair a new count with the old wraps */
        wraps = systick_wraps;
        count = SYST_CVR;
    } while (wraps != systick_wraps);
    uint64_t ticks = (uint64_t)wraps * (1u << 24) + (0xFFFFFFu - count);
    return (ticks * 10u + 128u) / 256u; /* / 25.6, rounded */
}

void board_exit(int status) {
    const uint32_t args[2] = {0x20026u, (uint32_t)status}; /* ADP_Stopped_ApplicationExit */
    semihost(SYS_EXIT_EXTENDED, args);
    for (;;) {
    }
}

static void systick_handler(void) {
    systick_wraps++;
}

static void fault_handler(void) {
    board_print("m4: fault (hard, memory, bus or usage)");
    board_exit(70);
}

void reset_handler(void) {
    memcpy(&_data_start, &_data_load, (size_t)((char *)&_data_end - (char *)&_data_start));
    memset(&_bss_start, 0, (size_t)((char *)&_bss_end - (char *)&_bss_start));
    CPACR |= 0xFu << 20; /* CP10 and CP11: the FPU, which newlib's soft-float ABI may touch */
    __asm__ volatile("dsb\n\tisb");
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* the processor clock, the wrap interrupt, enabled */
    while (SYST_CVR == 0) { /* until the first reload: a count of 0 would read as a full period */
    }
    board_exit(main());
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&_stack_top, reset_handler, fault_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler, systick_handler,
};
