// Package ia32 makes a 32-bit (ia32 compat) system call from a 64-bit
// process, for the probe's ABI test: int 0x80 enters the kernel's compat
// path (TS_COMPAT), where syscall numbers and argument registers are
// i386's. Kernels without ia32 emulation (ia32_emulation=0, or
// CONFIG_IA32_EMULATION off) answer with a general-protection fault: call it
// in a child process.
package ia32
