package event

import (
	"encoding/binary"
	"fmt"
)

// maxMsgpackDepth bounds the nesting checkMsgpackBounds follows.
const maxMsgpackDepth = 32

// checkMsgpackBounds walks one msgpack value in data without decoding it
// and fails if any array or map claims more elements than bytes remain
// (every element takes at least one), or a string, binary or extension more
// bytes than remain, or the nesting is deeper than maxMsgpackDepth. It runs
// before the reflection decoder (msgpack.Unmarshal), which allocates a
// slice of the claimed length up front: vmihailenco/msgpack v5.4.1's
// allocation limit never applies (decode_slice.go tests the flag with
// `!= 1`), so a 20-byte snapshot claiming 2.7 billion entries ran the
// process out of memory (FuzzDecodeSnapshot found it).
func checkMsgpackBounds(data []byte) error {
	pos, err := skipMsgpack(data, 0, 0)
	if err != nil {
		return err
	}
	if pos != len(data) {
		return fmt.Errorf("%d bytes after the value", len(data)-pos)
	}
	return nil
}

// skipMsgpack returns the position after the value at pos.
func skipMsgpack(data []byte, pos, depth int) (int, error) {
	if depth > maxMsgpackDepth {
		return 0, fmt.Errorf("nested deeper than %d", maxMsgpackDepth)
	}
	if pos >= len(data) {
		return 0, fmt.Errorf("truncated at byte %d", pos)
	}
	b := data[pos]
	pos++
	// size n of a length field of w bytes at pos
	field := func(w int) (int, error) {
		if len(data)-pos < w {
			return 0, fmt.Errorf("truncated length at byte %d", pos)
		}
		var n uint64
		switch w {
		case 1:
			n = uint64(data[pos])
		case 2:
			n = uint64(binary.BigEndian.Uint16(data[pos:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(data[pos:]))
		}
		pos += w
		if n > uint64(len(data)-pos) {
			return 0, fmt.Errorf("claims %d, %d bytes remain", n, len(data)-pos)
		}
		return int(n), nil
	}
	raw := func(n int) (int, error) {
		if n > len(data)-pos {
			return 0, fmt.Errorf("claims %d bytes, %d remain", n, len(data)-pos)
		}
		return pos + n, nil
	}
	items := func(n int) (int, error) {
		var err error
		for range n {
			if pos, err = skipMsgpack(data, pos, depth+1); err != nil {
				return 0, err
			}
		}
		return pos, nil
	}
	switch {
	case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		return pos, nil
	case b&0xf0 == 0x80: // fixmap
		return items(2 * int(b&0x0f))
	case b&0xf0 == 0x90: // fixarray
		return items(int(b & 0x0f))
	case b&0xe0 == 0xa0: // fixstr
		return raw(int(b & 0x1f))
	}
	switch b {
	case 0xc4, 0xd9: // bin8, str8
		n, err := field(1)
		if err != nil {
			return 0, err
		}
		return raw(n)
	case 0xc5, 0xda:
		n, err := field(2)
		if err != nil {
			return 0, err
		}
		return raw(n)
	case 0xc6, 0xdb:
		n, err := field(4)
		if err != nil {
			return 0, err
		}
		return raw(n)
	case 0xc7, 0xc8, 0xc9: // ext8/16/32: length, type, data
		n, err := field(map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[b])
		if err != nil {
			return 0, err
		}
		return raw(n + 1)
	case 0xca:
		return raw(4)
	case 0xcb:
		return raw(8)
	case 0xcc, 0xd0:
		return raw(1)
	case 0xcd, 0xd1:
		return raw(2)
	case 0xce, 0xd2:
		return raw(4)
	case 0xcf, 0xd3:
		return raw(8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16 plus the type byte
		return raw(1 + 1<<(b-0xd4))
	case 0xdc:
		n, err := field(2)
		if err != nil {
			return 0, err
		}
		return items(n)
	case 0xdd:
		n, err := field(4)
		if err != nil {
			return 0, err
		}
		return items(n)
	case 0xde:
		n, err := field(2)
		if err != nil || 2*n > len(data)-pos {
			return 0, fmt.Errorf("map claims %d pairs, %d bytes remain", n, len(data)-pos)
		}
		return items(2 * n)
	case 0xdf:
		n, err := field(4)
		if err != nil || 2*n > len(data)-pos {
			return 0, fmt.Errorf("map claims %d pairs, %d bytes remain", n, len(data)-pos)
		}
		return items(2 * n)
	}
	return 0, fmt.Errorf("byte %#x at %d is no msgpack type", b, pos-1)
}
