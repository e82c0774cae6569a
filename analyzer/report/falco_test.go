package report

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

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
	for _, name := range []string{"testdata/falco_sample.json", "testdata/falco_output.jsonl"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte("{\"output_fields\":null}\n{\"output_fields\":[]}\n{\"ringwise\":{\"reason\":5},\"rule\":\"x\"}"))
	f.Add([]byte("\r\n\r\n \t\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, st, err := AnalyzeFalco(bytes.NewReader(in))
		an := s.Analyzer
		if st.Events+st.DropAlerts+st.MetricsSnapshots+sumInts(st.Skipped) != st.Lines {
			t.Fatalf("events+alerts+snapshots+skipped != lines: %+v", st)
		}
		if st.Malformed > sumInts(st.Skipped) {
			t.Fatalf("malformed %d > skipped %v", st.Malformed, st.Skipped)
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
