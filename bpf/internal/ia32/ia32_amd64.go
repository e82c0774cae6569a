package ia32

// Getpid32 is i386 getpid (20) through int 0x80. It returns the pid.
func Getpid32() uint32
