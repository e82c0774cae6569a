package lab

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progRedraw is the least time between two redraws of the bar.
const progRedraw = 100 * time.Millisecond

// progWidth is the bar's width in cells; the whole line stays under 80 columns.
const progWidth = 20

// Progress reports the lab's progress: on a terminal, a one-line bar that
// redraws in place; otherwise one plain line per run start and end. It is
// safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	total    int
	done     int
	term     bool
	label    string
	frac     float64
	start    time.Time
	lastDraw time.Time
	drawn    bool
	now      func() time.Time
}

// NewProgress returns a Progress over total runs writing to w; isTerminal
// selects the redrawn bar.
func NewProgress(w io.Writer, total int, isTerminal bool) *Progress {
	if w == nil {
		w = io.Discard
	}
	return &Progress{w: w, total: total, term: isTerminal, now: time.Now}
}

// Start announces a run, e.g. "16 MiB shared #2".
func (p *Progress) Start(label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		p.start = p.now()
	}
	p.label, p.frac = label, 0
	if p.term {
		p.progDraw()
		return
	}
	fmt.Fprintf(p.w, "%s %s ...\n", p.progCount(p.done+1), label)
}

// Update reports progress within the current run, 0..1. On a terminal it
// redraws at most about ten times a second; otherwise it prints nothing.
func (p *Progress) Update(frac float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if math.IsNaN(frac) {
		return
	}
	p.frac = math.Max(0, math.Min(1, frac))
	if !p.term || p.now().Sub(p.lastDraw) < progRedraw {
		return
	}
	p.progDraw()
}

// Done ends the current run with a summary line and advances the count.
func (p *Progress) Done(summary string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.term {
		p.progClear()
	}
	if summary == "" {
		summary = p.label + " done"
	}
	fmt.Fprintf(p.w, "%s %s\n", p.progCount(p.done), summary)
	p.label, p.frac = "", 0
}

// Finish clears the bar, if one is drawn.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term {
		p.progClear()
	}
}

// progCount formats "[i/N]".
func (p *Progress) progCount(i int) string {
	if p.total > 0 {
		n := len(fmt.Sprint(p.total))
		return fmt.Sprintf("[%*d/%d]", n, i, p.total)
	}
	return fmt.Sprintf("[%d]", i)
}

func (p *Progress) progClear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// progDraw redraws the bar: the run's count and label, a bar of the current
// run, and the overall share with an estimate of the time left.
func (p *Progress) progDraw() {
	p.lastDraw = p.now()
	filled := int(math.Round(p.frac * progWidth))
	bar := strings.Repeat("█", filled) + strings.Repeat("░", progWidth-filled)
	label := p.label
	if r := []rune(label); len(r) > 22 {
		label = string(r[:21]) + "…"
	}
	line := fmt.Sprintf("%s %-22s %s %3.0f%%", p.progCount(p.done+1), label, bar, p.frac*100)
	if p.total > 0 {
		overall := (float64(p.done) + p.frac) / float64(p.total)
		line += fmt.Sprintf("  all %3.0f%%", overall*100)
		if el := p.now().Sub(p.start); overall > 0.02 && overall < 1 && el > time.Second {
			left := time.Duration(float64(el) * (1 - overall) / overall).Round(time.Second)
			line += " ~" + left.String() + " left"
		}
	}
	fmt.Fprint(p.w, "\r\033[K"+line)
	p.drawn = true
}

// IsTerminal reports whether f is a terminal (not just any character device
// such as /dev/null).
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
