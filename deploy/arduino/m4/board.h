/* What the bare-metal image has instead of an operating system: semihosting (the host's
 * files, through QEMU) and an instruction counter (SysTick under QEMU's -icount). */
#ifndef SER_M4_BOARD_H
#define SER_M4_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* A host file opened for reading ("rb") or writing ("wb"); -1 on failure. */
int board_open(const char *path, int write);
/* Bytes read (short only at the end of the file). */
size_t board_read(int fd, void *data, size_t n);
/* Returns 0, or -1 when the host did not take every byte. */
int board_write(int fd, const void *data, size_t n);
void board_close(int fd);
/* One line on the host's standard error. */
void board_print(const char *text);
/* Instructions executed since reset (under QEMU's -icount shift=10). */
uint64_t board_instructions(void);
/* Ends the run: QEMU exits with this status. */
void board_exit(int status) __attribute__((noreturn));

#endif
