package bus

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is what a node subject carries: the second token of
// ringwise.<kind>.<node>.
type Kind string

// The kinds of node subjects.
const (
	KindRaw      Kind = "raw"      // raw batches from a node's sensor (RINGWISE_RAW)
	KindSnapshot Kind = "snapshot" // /proc snapshot parts from a node's sensor (RINGWISE_RAW)
	KindEnriched Kind = "enriched" // enriched batches of a node (RINGWISE_ENRICHED)
	KindStats    Kind = "stats"    // a node's sensor counters (RINGWISE_STATS)
	KindProc     Kind = "proc"     // request/reply /proc lookups of a node (no stream)
)

// subjectRoot is the first token of every ringwise subject.
const subjectRoot = "ringwise."

var kinds = [...]Kind{KindRaw, KindSnapshot, KindEnriched, KindStats, KindProc}

// ErrSubject is wrapped by ParseSubject's errors.
var ErrSubject = errors.New("not a ringwise node subject")

// Subject returns ringwise.<kind>.<node>.
func Subject(k Kind, node string) string { return subjectRoot + string(k) + "." + node }

// ParseSubject splits a node subject ringwise.<kind>.<node> into its kind
// and node. It fails (wrapping ErrSubject) on any other subject, an unknown
// kind, or a node name that ValidNode refuses.
func ParseSubject(subject string) (Kind, string, error) {
	rest, ok := strings.CutPrefix(subject, subjectRoot)
	if !ok {
		return "", "", fmt.Errorf("subject %q: %w: want prefix %q", subject, ErrSubject, subjectRoot)
	}
	k, node, ok := strings.Cut(rest, ".")
	if !ok {
		return "", "", fmt.Errorf("subject %q: %w: no node token", subject, ErrSubject)
	}
	kind := Kind(k)
	known := false
	for _, x := range kinds {
		known = known || x == kind
	}
	if !known {
		return "", "", fmt.Errorf("subject %q: %w: unknown kind %q", subject, ErrSubject, k)
	}
	if err := ValidNode(node); err != nil {
		return "", "", fmt.Errorf("subject %q: %w: %v", subject, ErrSubject, err)
	}
	return kind, node, nil
}
