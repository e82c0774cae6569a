package report

import (
	"bytes"
	"maps"
	"os"
	"strings"
	"testing"
)

func TestAnalyzeFalcoSample(t *testing.T) {
	f, err := os.Open("testdata/falco_sample.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, st, err := AnalyzeFalco(f)
	if err != nil {
		t.Fatal(err)
	}
	wantSt := FalcoStats{Lines: 12, Blank: 1, Events: 10, Malformed: 2}
	if st.FirstError == "" || !strings.HasPrefix(st.FirstError, "line 7:") {
		t.Errorf("first error %q", st.FirstError)
	}
	st.FirstError = ""
	if st != wantSt {
		t.Errorf("stats %+v want %+v", st, wantSt)
	}
	an := s.Analyzer
	if s.Node != "node-a" || an.Events != 10 || an.Missing != 7 || an.LifecycleAttributed != 2 || an.MissingPct != 70 {
		t.Errorf("summary node %q events %d missing %d lifecycle %d pct %v", s.Node, an.Events, an.Missing, an.LifecycleAttributed, an.MissingPct)
	}
	wantField := map[string]uint64{
		"proc.name": 4, "proc.exepath": 3, "proc.cmdline": 4, "proc.ppid": 3,
		"user.uid": 3, "user.name": 1, "proc.pname": 1,
	}
	if !maps.Equal(an.ByField, wantField) {
		t.Errorf("by_field %v\nwant     %v", an.ByField, wantField)
	}
	wantReason := map[string]uint64{ReasonFalcoInput: 5, "fork_dropped": 1, "exec_dropped": 1}
	if !maps.Equal(an.ByReason, wantReason) {
		t.Errorf("by_reason %v want %v", an.ByReason, wantReason)
	}
	var out bytes.Buffer
	WriteText(&out, s)
	for _, want := range []string{"node node-a", "10 analyzed, 7 missing metadata (70.00%)", "proc.name", "fork_dropped", "(lifecycle record dropped)", "2 of 7 events missing metadata (28.6%) blame lifecycle records"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAnalyzeFalcoEdges(t *testing.T) {
	t.Run("all malformed", func(t *testing.T) {
		_, st, err := AnalyzeFalco(strings.NewReader("not json\n\n{\"a\":1}\n[1,2]\n"))
		if err == nil || !strings.Contains(err.Error(), "all 3 non-blank lines are malformed") {
			t.Fatalf("err %v", err)
		}
		if st.Malformed != 3 || st.Blank != 1 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("empty", func(t *testing.T) {
		s, st, err := AnalyzeFalco(strings.NewReader(""))
		if err != nil || st.Lines != 0 || s.Analyzer.Events != 0 {
			t.Fatalf("%v %+v", err, st)
		}
	})
	t.Run("crlf and no final newline", func(t *testing.T) {
		in := "{\"rule\":\"r\",\"output_fields\":{\"proc.name\":\"<NA>\"}}\r\n{\"rule\":\"r\",\"output_fields\":{\"user.uid\":4294967295.0}}"
		s, st, err := AnalyzeFalco(strings.NewReader(in))
		if err != nil || st.Events != 2 || s.Analyzer.Missing != 2 {
			t.Fatalf("%v %+v %+v", err, st, s.Analyzer)
		}
	})
	t.Run("too long", func(t *testing.T) {
		long := `{"rule":"r","output":"` + strings.Repeat("x", MaxFalcoLine) + `"}`
		in := long + "\n" + `{"rule":"r","output_fields":{"proc.pid":-1}}` + "\n"
		s, st, err := AnalyzeFalco(strings.NewReader(in))
		if err != nil || st.Lines != 2 || st.Malformed != 1 || st.Events != 1 || s.Analyzer.ByField["proc.pid"] != 1 {
			t.Fatalf("%v %+v %+v", err, st, s.Analyzer)
		}
		if !strings.Contains(st.FirstError, "line 1: longer than") {
			t.Errorf("first error %q", st.FirstError)
		}
	})
	t.Run("long but allowed", func(t *testing.T) {
		in := `{"rule":"r","output":"` + strings.Repeat("y", 200_000) + `","output_fields":{"proc.name":null}}`
		s, st, err := AnalyzeFalco(strings.NewReader(in))
		if err != nil || st.Events != 1 || s.Analyzer.Missing != 1 {
			t.Fatalf("%v %+v", err, st)
		}
	})
}

func TestIsUnknownFalcoValue(t *testing.T) {
	for raw, want := range map[string]bool{
		`null`: true, `"<NA>"`: true, `""`: true, `-1`: true, `"-1"`: true, `4294967295`: true,
		`"4294967295"`: true, `-1.0`: true, `4.294967295e9`: true, ` null `: true,
		`0`: false, `"bash"`: false, `1000`: false, `"<NA"`: false, `true`: false, `{}`: false,
		`[]`: false, `"\u003cNA\u003e"`: true, `nul`: false, `-`: false, `"unterminated`: false,
	} {
		if got := IsUnknownFalcoValue([]byte(raw)); got != want {
			t.Errorf("IsUnknownFalcoValue(%s) = %v, want %v", raw, got, want)
		}
	}
}

func FuzzAnalyzeFalco(f *testing.F) {
	data, err := os.ReadFile("testdata/falco_sample.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	for _, line := range bytes.Split(data, []byte("\n")) {
		f.Add(line)
	}
	f.Add([]byte("{\"output_fields\":null}\n{\"output_fields\":[]}\n{\"ringwise\":{\"reason\":5},\"rule\":\"x\"}"))
	f.Add([]byte("\r\n\r\n \t\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, st, err := AnalyzeFalco(bytes.NewReader(in))
		an := s.Analyzer
		if st.Events+st.Malformed != st.Lines {
			t.Fatalf("events %d + malformed %d != lines %d", st.Events, st.Malformed, st.Lines)
		}
		if uint64(st.Events) != an.Events || an.Missing > an.Events || an.LifecycleAttributed > an.Missing {
			t.Fatalf("inconsistent %+v %+v", st, an)
		}
		var sum uint64
		for _, c := range an.ByReason {
			sum += c
		}
		if sum != an.Missing {
			t.Fatalf("by_reason sums to %d, missing %d", sum, an.Missing)
		}
		if (err != nil) != (st.Lines > 0 && st.Malformed == st.Lines) {
			t.Fatalf("err %v with %+v", err, st)
		}
		WriteText(&bytes.Buffer{}, s)
	})
}
