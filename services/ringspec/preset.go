package ringspec

import "fmt"

// Falco's --buf-size-preset (bufSizePreset) range. Preset 0 (a
// driver-specific custom size) is not supported.
const (
	MinPreset = 1
	MaxPreset = 10
)

// PresetSize maps Falco's bufSizePreset to bytes, so that ringwise runs can be
// compared with Falco at the same setting: 1→1MiB, 2→2MiB, 3→4MiB, 4→8MiB
// (Falco's default, DefaultPreset), 5→16MiB … 10→512MiB. Anything outside
// MinPreset..MaxPreset is an error, so a bad preset never silently becomes a
// ring.
func PresetSize(p int) (int, error) {
	if p < MinPreset || p > MaxPreset {
		return 0, fmt.Errorf("buffer size preset %d: want %d..%d (1→1MiB … 4→8MiB default … 10→512MiB)", p, MinPreset, MaxPreset)
	}
	return 1 << (20 + p - 1), nil
}

// PresetOf is the bufSizePreset whose ring is exactly size bytes, and false
// when no preset is.
func PresetOf(size int) (int, bool) {
	for p := MinPreset; p <= MaxPreset; p++ {
		if s, _ := PresetSize(p); s == size {
			return p, true
		}
	}
	return 0, false
}

// PresetHelp lists the presets for flag help: "1=1MiB 2=2MiB … 10=512MiB".
func PresetHelp() string {
	var s string
	for p := MinPreset; p <= MaxPreset; p++ {
		n, _ := PresetSize(p)
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%d=%s", p, FlagSize(n))
	}
	return s
}
