package ringspec

import (
	"strings"
	"testing"
)

func TestParseLayout(t *testing.T) {
	for _, l := range LabLayouts() {
		got, err := ParseLayout(" "+string(l)+" ", LabLayouts()...)
		if err != nil || got != l {
			t.Errorf("ParseLayout(%q) = %q, %v", l, got, err)
		}
	}
	if _, err := ParseLayout("shared+hints", ProbeLayouts()...); err == nil || !strings.Contains(err.Error(), "want one of shared, split, falco") {
		t.Errorf("shared+hints accepted for the probe, or a vague error: %v", err)
	}
	if _, err := ParseLayout("mixed"); err == nil {
		t.Error("mixed accepted as a layout to run")
	}
	if l, err := ParseLayout("falco"); err != nil || l != LayoutFalco {
		t.Errorf("falco: %q, %v", l, err)
	}
	got, err := ParseLayouts("shared, split,,shared+shed", LabLayouts()...)
	if err != nil || len(got) != 3 || got[2] != LayoutSharedShed {
		t.Errorf("ParseLayouts = %v, %v", got, err)
	}
	for _, in := range []string{"", ",", "shared,nope"} {
		if got, err := ParseLayouts(in, LabLayouts()...); err == nil {
			t.Errorf("ParseLayouts(%q) = %v, want an error", in, got)
		}
	}
}

func TestLayoutProperties(t *testing.T) {
	for _, tc := range []struct {
		l                Layout
		base             Layout
		lc, hints, sheds bool
	}{
		{LayoutShared, LayoutShared, false, false, false},
		{LayoutSplit, LayoutSplit, true, false, false},
		{LayoutSharedHints, LayoutShared, false, true, false},
		{LayoutSharedShed, LayoutShared, false, false, true},
	} {
		if tc.l.Base() != tc.base || tc.l.HasLifecycleRing() != tc.lc || tc.l.Hints() != tc.hints || tc.l.Sheds() != tc.sheds {
			t.Errorf("%s: base %s lifecycle ring %v hints %v sheds %v", tc.l, tc.l.Base(), tc.l.HasLifecycleRing(), tc.l.Hints(), tc.l.Sheds())
		}
	}
	if got := JoinLayouts(ProbeLayouts(), ","); got != "shared,split,falco" {
		t.Errorf("JoinLayouts = %q", got)
	}
}
