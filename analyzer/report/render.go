package report

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

// Falco-style renderings of unknown values in output text.
const (
	naString = "<NA>"
	naPPid   = "-1"
	naUID    = "4294967295"
)

// Rule and priority of rendered events.
const (
	RenderRule     = "ringwise event"
	RenderPriority = "Debug"
)

// AppendFalcoJSON appends one line (with trailing '\n') describing e as
// Falco's JSON output does, and returns the extended buffer:
//
//	{"time":"2026-11-27T07:43:52.123456789Z","rule":"ringwise event","priority":"Debug",
//	 "source":"syscall","hostname":node,"output":"07:43:52.123456789: Debug ringwise event evt.type=openat ...",
//	 "output_fields":{"evt.time":<unix ns>,"evt.type":"openat","proc.pid":1,"proc.tid":1,
//	   "proc.ppid":1|null,"proc.name":"x"|null,"proc.exepath":"x"|null,"proc.cmdline":"x"|null,
//	   "user.uid":0|null[,"evt.rawres":-2]},
//	 "ringwise":{"missing":["proc.name"],"reason":"fork_dropped","source":"state","exec_id":1,"start_ns":1}}
//
// Fields in e.Missing are null in output_fields and <NA>, -1 (ppid) or
// 4294967295 (uid) in the output text. Wall time is e.TsNs + wallOffsetNs;
// the text's clock is UTC. "reason" is omitted when nothing is missing and
// no reason is set; it is "unspecified" when fields are missing without a
// reason. Syscall numbers are named from the syscalls table of the event's
// ABI (event.Event.ABI), ia32 by its x86_64 equivalent. Strings
// are JSON-escaped; invalid UTF-8 becomes U+FFFD. It does not allocate when
// dst has room.
func AppendFalcoJSON(dst []byte, e *event.Enriched, wallOffsetNs int64, node string) []byte {
	ns := int64(e.TsNs) + wallOffsetNs
	t := time.Unix(0, ns).UTC()

	dst = append(dst, `{"time":"`...)
	dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000000000Z07:00")
	dst = append(dst, `","rule":"`+RenderRule+`","priority":"`+RenderPriority+`","source":"syscall","hostname":`...)
	dst = appendJSONString(dst, node)

	// Output text, escaped in place.
	dst = append(dst, `,"output":"`...)
	dst = t.AppendFormat(dst, "15:04:05.000000000")
	dst = append(dst, ": "+RenderPriority+" "+RenderRule+" evt.type="...)
	dst = appendEvtType(dst, e)
	dst = append(dst, " proc.name="...)
	dst = appendTextString(dst, e.ProcName, e.Missing&event.FieldName != 0)
	dst = append(dst, " proc.exepath="...)
	dst = appendTextString(dst, e.ProcExePath, e.Missing&event.FieldExePath != 0)
	dst = append(dst, " proc.pid="...)
	dst = strconv.AppendUint(dst, uint64(e.Pid), 10)
	dst = append(dst, " proc.tid="...)
	dst = strconv.AppendUint(dst, uint64(e.Tid), 10)
	dst = append(dst, " proc.ppid="...)
	if e.Missing&event.FieldPPid != 0 {
		dst = append(dst, naPPid...)
	} else {
		dst = strconv.AppendUint(dst, uint64(e.ProcPPid), 10)
	}
	dst = append(dst, " user.uid="...)
	if e.Missing&event.FieldUID != 0 {
		dst = append(dst, naUID...)
	} else {
		dst = strconv.AppendUint(dst, uint64(e.ProcUID), 10)
	}
	dst = append(dst, " proc.cmdline="...)
	dst = appendTextString(dst, e.ProcCmdline, e.Missing&event.FieldCmdline != 0)
	if e.Missing != 0 {
		dst = append(dst, " ringwise.missing="...)
		first := true
		e.Missing.Each(func(name string) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, name...)
		})
		dst = append(dst, " ringwise.reason="...)
		dst = append(dst, reasonKey(e.Reason)...)
	}

	dst = append(dst, `","output_fields":{"evt.time":`...)
	dst = strconv.AppendInt(dst, ns, 10)
	dst = append(dst, `,"evt.type":"`...)
	dst = appendEvtType(dst, e)
	dst = append(dst, `","proc.pid":`...)
	dst = strconv.AppendUint(dst, uint64(e.Pid), 10)
	dst = append(dst, `,"proc.tid":`...)
	dst = strconv.AppendUint(dst, uint64(e.Tid), 10)
	if e.VPid != 0 {
		// The pid in the process's own namespace, as Falco's proc.vpid.
		dst = append(dst, `,"proc.vpid":`...)
		dst = strconv.AppendUint(dst, uint64(e.VPid), 10)
	}
	// Falco's container.id: the runtime's id cut to 12, "host" outside
	// containers.
	dst = append(dst, `,"container.id":"`...)
	if e.ContainerID == "" {
		dst = append(dst, "host"...)
	} else {
		dst = appendJSONContent(dst, e.ContainerID)
	}
	dst = append(dst, '"')
	dst = append(dst, `,"proc.ppid":`...)
	dst = appendJSONUint(dst, uint64(e.ProcPPid), e.Missing&event.FieldPPid != 0)
	dst = append(dst, `,"proc.name":`...)
	dst = appendJSONStringOrNull(dst, e.ProcName, e.Missing&event.FieldName != 0)
	dst = append(dst, `,"proc.exepath":`...)
	dst = appendJSONStringOrNull(dst, e.ProcExePath, e.Missing&event.FieldExePath != 0)
	dst = append(dst, `,"proc.cmdline":`...)
	dst = appendJSONStringOrNull(dst, e.ProcCmdline, e.Missing&event.FieldCmdline != 0)
	dst = append(dst, `,"user.uid":`...)
	dst = appendJSONUint(dst, uint64(e.ProcUID), e.Missing&event.FieldUID != 0)
	if e.Type == event.TypeSyscall {
		dst = append(dst, `,"evt.rawres":`...)
		dst = strconv.AppendInt(dst, e.Ret, 10)
	}

	dst = append(dst, `},"ringwise":{"missing":[`...)
	first := true
	e.Missing.Each(func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"')
	})
	dst = append(dst, ']')
	if e.Missing != 0 || e.Reason != event.ReasonNone {
		dst = append(dst, `,"reason":"`...)
		dst = appendJSONContent(dst, reasonKey(e.Reason))
		dst = append(dst, '"')
	}
	dst = append(dst, `,"source":"`...)
	dst = append(dst, e.Source.String()...)
	dst = append(dst, `","exec_id":`...)
	dst = strconv.AppendUint(dst, uint64(e.ExecID), 10)
	dst = append(dst, `,"start_ns":`...)
	dst = strconv.AppendUint(dst, e.StartNs, 10)
	dst = append(dst, "}}\n"...)
	return dst
}

// appendEvtType appends Falco's evt.type for e (no escaping needed).
func appendEvtType(dst []byte, e *event.Enriched) []byte {
	if e.Type != event.TypeSyscall {
		return appendJSONContent(dst, e.Type.String())
	}
	// Falco names ia32 calls by their x86_64 equivalent (setuid32 is
	// setuid): normalize, then name in the normalized ABI.
	abi := e.SyscallABI()
	if nr, ok := syscalls.Normalize(abi, e.Syscall); ok {
		return append(dst, syscalls.Name(syscalls.NormalABI(abi), nr)...)
	}
	dst = append(dst, "syscall_"...)
	return strconv.AppendUint(dst, uint64(e.Syscall), 10)
}

func appendJSONUint(dst []byte, v uint64, null bool) []byte {
	if null {
		return append(dst, "null"...)
	}
	return strconv.AppendUint(dst, v, 10)
}

func appendJSONStringOrNull(dst []byte, s string, null bool) []byte {
	if null {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s)
}

// appendTextString appends s, or <NA> if unknown, escaped for the inside of
// a JSON string.
func appendTextString(dst []byte, s string, unknown bool) []byte {
	if unknown {
		return append(dst, naString...)
	}
	return appendJSONContent(dst, s)
}

// appendJSONString appends s as a quoted JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONContent(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONContent appends s escaped for the inside of a JSON string:
// quotes, backslashes and control characters are escaped, invalid UTF-8
// becomes U+FFFD, and U+2028/U+2029 are escaped as encoding/json does.
func appendJSONContent(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
