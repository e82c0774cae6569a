package promtext

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// Written by us in the exposition format Falco's web server uses.
const twoScrapes = `# HELP falcosecurity_scap_n_evts_total https://falco.org/docs/metrics/
# TYPE falcosecurity_scap_n_evts_total counter
falcosecurity_scap_n_evts_total 1000
falcosecurity_scap_n_drops_buffer_total{dir="exit",drop="clone_fork"} 3
falcosecurity_scap_n_drops_buffer_total{dir="enter",drop="clone_fork"} 1
falcosecurity_falco_version_info{version="0.41.0"} 1

falcosecurity_scap_n_evts_total 2500 1795773600000
falcosecurity_scap_n_drops_buffer_total{dir="exit",drop="clone_fork"} 7
falcosecurity_scap_n_drops_buffer_total{dir="enter",drop="clone_fork"} 1
`

func TestParseSeries(t *testing.T) {
	scrapes, st, err := Parse(strings.NewReader(twoScrapes))
	if err != nil {
		t.Fatal(err)
	}
	if len(scrapes) != 2 || st.Samples != 7 || st.Comments != 2 || st.Bad != 0 {
		t.Fatalf("%d scrapes, %+v", len(scrapes), st)
	}
	s := scrapes[1].Samples[0]
	if s.Name != "falcosecurity_scap_n_evts_total" || s.Value != 2500 || !s.HasTs || s.TsMs != 1795773600000 {
		t.Errorf("%+v", s)
	}
	b := scrapes[0].Samples[1]
	if d, _ := b.Label("dir"); d != "exit" {
		t.Errorf("labels %+v", b.Labels)
	}
	if dr, ok := b.Label("drop"); !ok || dr != "clone_fork" || b.Value != 3 {
		t.Errorf("%+v", b)
	}
}

func TestParseSample(t *testing.T) {
	for line, want := range map[string]Sample{
		`a 1`:                           {Name: "a", Value: 1},
		`a_b:c{} 2.5e3`:                 {Name: "a_b:c", Value: 2500},
		`x{l="v \"q\" \\ \n",m="2"} -3`: {Name: "x", Labels: []Label{{"l", "v \"q\" \\ \n"}, {"m", "2"}}, Value: -3},
		`x{ l = "a" , } 4 -5`:           {Name: "x", Labels: []Label{{"l", "a"}}, Value: 4, TsMs: -5, HasTs: true},
		`inf +Inf`:                      {Name: "inf", Value: math.Inf(1)},
	} {
		got, err := ParseSample(line)
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if got.Name != want.Name || got.Value != want.Value || got.TsMs != want.TsMs || got.HasTs != want.HasTs || len(got.Labels) != len(want.Labels) {
			t.Errorf("%q: %+v want %+v", line, got, want)
			continue
		}
		for i := range got.Labels {
			if got.Labels[i] != want.Labels[i] {
				t.Errorf("%q: label %d %+v want %+v", line, i, got.Labels[i], want.Labels[i])
			}
		}
	}
	for _, bad := range []string{`1abc 1`, `a`, `a{b="c"`, `a{b=c} 1`, `a x`, `a 1 2 3`, `a 1 1.5`, `{a="b"} 1`, `a{b="c" d="e"} 1`} {
		if _, err := ParseSample(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseBadInput(t *testing.T) {
	_, st, err := Parse(strings.NewReader("<html>not metrics</html>\n"))
	if !errors.Is(err, ErrNoSamples) || st.Bad != 1 || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("%v %+v", err, st)
	}
	scrapes, st, err := Parse(strings.NewReader("a 1\nbroken{\nb 2\n" + strings.Repeat("c", MaxLine+10) + " 1\nd 3"))
	if err != nil || len(scrapes) != 1 || len(scrapes[0].Samples) != 3 || st.Bad != 2 {
		t.Fatalf("%v %+v %+v", err, st, scrapes)
	}
	if _, _, err := Parse(strings.NewReader("")); !errors.Is(err, ErrNoSamples) {
		t.Errorf("empty: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(twoScrapes))
	f.Add([]byte("a{b=\"\\\"}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		scrapes, st, err := Parse(strings.NewReader(string(in)))
		n := 0
		for _, s := range scrapes {
			n += len(s.Samples)
		}
		if n != st.Samples || (err == nil) != (st.Samples > 0) {
			t.Fatalf("samples %d vs %+v err %v", n, st, err)
		}
		if st.Samples+st.Bad+st.Comments != st.Lines {
			t.Fatalf("%+v", st)
		}
	})
}
