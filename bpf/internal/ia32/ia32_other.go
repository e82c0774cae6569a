//go:build !amd64

package ia32

// Getpid32 panics: ia32 calls exist only on x86_64.
func Getpid32() uint32 { panic("ia32: not an x86_64 build") }
