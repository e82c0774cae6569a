package syscalls

// IDKind is which id a credential syscall changes.
type IDKind uint8

const (
	// UID is the user id.
	UID IDKind = iota + 1
	// GID is the group id.
	GID
)

// CredChange describes a setuid-family syscall: which effective id it sets
// and from which argument.
type CredChange struct {
	Kind IDKind
	// Arg is the index of the argument that holds the new effective id:
	// 0 for setuid/setgid, 1 for setreuid/setregid/setresuid/setresgid.
	Arg int
	// Bits is 16 for ia32's legacy 16-bit calls (setuid, not setuid32),
	// whose "leave unchanged" value is 0xffff; otherwise 32.
	Bits int
}

// credCalls are the setuid family by name, the same on every ABI.
var credCalls = map[string]CredChange{
	"setuid": {UID, 0, 32}, "setgid": {GID, 0, 32},
	"setreuid": {UID, 1, 32}, "setregid": {GID, 1, 32},
	"setresuid": {UID, 1, 32}, "setresgid": {GID, 1, 32},
}

// Cred reports whether syscall nr of ABI a changes an effective id, and how.
// On ia32 both the legacy 16-bit calls (setuid = 23) and the 32-bit ones
// (setuid32 = 213) count.
func Cred(a ABI, nr uint32) (CredChange, bool) {
	name := Name(a, nr)
	if len(name) < len("setuid") || name[:3] != "set" {
		return CredChange{}, false // the common case, without a map lookup
	}
	if c, ok := credCalls[name]; ok {
		if a == IA32 {
			c.Bits = 16
		}
		return c, true
	}
	if a == IA32 && len(name) > 2 && name[len(name)-2:] == "32" {
		c, ok := credCalls[name[:len(name)-2]]
		return c, ok
	}
	return CredChange{}, false
}

// NewID is the id the call sets from its arguments, and false when the
// argument asks to leave it unchanged (-1).
func (c CredChange) NewID(args [3]uint64) (uint32, bool) {
	if c.Arg < 0 || c.Arg >= len(args) {
		return 0, false
	}
	id := uint32(args[c.Arg])
	if c.Bits == 16 {
		id &= 0xffff
		return id, id != 0xffff
	}
	return id, id != 0xffffffff
}
