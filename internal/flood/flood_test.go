package flood

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
)

func TestFloodRecordsTruth(t *testing.T) {
	var buf bytes.Buffer
	res, err := Run(context.Background(), Config{Procs: 20, Parallel: 3, Burst: 7, Pause: 1, Truth: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if res.Spawned != 20 || res.Failed != 0 {
		t.Fatalf("spawned %d failed %d (%v)", res.Spawned, res.Failed, res.FirstErr)
	}
	sc := bufio.NewScanner(&buf)
	seen := map[uint32]bool{}
	for sc.Scan() {
		var p Proc
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.Comm != HelperName || p.PPid != uint32(os.Getpid()) || p.Pid == 0 || p.Exe == "" {
			t.Fatalf("bad truth %+v", p)
		}
		seen[p.Pid] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct pids in truth, want 20", len(seen))
	}
}

func TestFloodValidate(t *testing.T) {
	for _, c := range []Config{{Procs: 0}, {Procs: 1, Parallel: 1000}, {Procs: 1, Pause: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want error", c)
		}
	}
}

func TestArgv(t *testing.T) {
	for _, n := range []int{0, 5, 12, 13, 100, 1000, 5000} {
		exe := "/tmp/x/rwflood"
		got := len(exe) + 1
		for _, a := range Argv(exe, n) {
			got += len(a) + 1
		}
		if want := max(n, len(exe)+1); got != want && got != want-1 {
			t.Errorf("Argv(%d): block of %d bytes", n, got)
		}
	}
	ls, err := CmdlineLengths("/proc")
	if err != nil || len(ls) == 0 || ls[0] <= 0 {
		t.Errorf("CmdlineLengths: %v %v", ls, err)
	}
}
