package event

import (
	"errors"
	"testing"
)

// TestSnapshotHugeArrayClaim: a 20-byte snapshot whose array claims 2.7
// billion entries is refused as malformed before the reflection decoder
// allocates for it (it ran the process out of memory).
func TestSnapshotHugeArrayClaim(t *testing.T) {
	data := []byte("\x970\xa10\xa1\x05\xec0'\xdd\xa100\xa10\xa1\x05\xa1")
	if _, err := DecodeSnapshot(data); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err %v, want ErrMalformed", err)
	}
	good, err := EncodeSnapshot(&Snapshot{Node: "n", BootID: "b", Part: 1, Parts: 1, Procs: []ProcInfo{{Pid: 1, Comm: "init", ExePath: "/sbin/init", Cmdline: "init"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkMsgpackBounds(good); err != nil {
		t.Fatalf("a valid snapshot: %v", err)
	}
	for i := range good { // every truncation is refused, never accepted or crashing
		if err := checkMsgpackBounds(good[:i]); err == nil {
			t.Errorf("truncated to %d of %d bytes: accepted", i, len(good))
		}
	}
}
