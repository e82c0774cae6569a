package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// cmdDLQ lists the dead letters in RINGWISE_DLQ.
func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dlq", `dlq --nats URL [--limit N] [--json]

Lists the messages that the enricher's and the analyzer's consume loops refused
as bad input and copied to the dead-letter stream `+bus.StreamDLQ+` (subjects
ringwise.dlq.<kind>.<node>), oldest first, without removing them: when it was
dead-lettered, the reason (malformed, oversized, schema_version, node_mismatch,
bad_subject, max_deliver, …), the original subject, stream and sequence, the
original size in bytes (payloads above `+fmt.Sprint(bus.DeadLetterMaxData>>10)+` KiB are kept truncated, marked
"+"), and the error. The stream keeps the newest dead letters within `+fmt.Sprint(bus.DefaultDLQMaxBytes>>20)+` MiB,
`+fmt.Sprint(bus.DefaultDLQMaxMsgs)+` messages and `+bus.DefaultDLQMaxAge.String()+`.`, stderr)
	var nf natsClientFlags
	nf.registerConn(fs)
	url := &nf.url
	limit := fs.Int("limit", 0, "list at most N dead letters (0 = all)")
	asJSON := fs.Bool("json", false, "print the dead letters as a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *url == "" {
		return errors.New("--nats URL is required (e.g. nats://127.0.0.1:4222)")
	}
	// Reading the DLQ is the analyzer's right (or the admin's).
	a, err := nf.auth(bus.RoleAnalyzer, "")
	if err != nil {
		return err
	}
	opts, err := a.Options()
	if err != nil {
		return err
	}
	nc, err := bus.Connect(*url, "ringwise-dlq", opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dls, err := bus.ListDeadLetters(lctx, js, *limit)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no stream %s on %s: no service has created the streams yet", bus.StreamDLQ, *url)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if dls == nil {
			dls = []bus.DeadLetter{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(dls)
	}
	writeDeadLetters(stdout, dls)
	return nil
}

// writeDeadLetters prints dead letters as a table and a count per reason.
func writeDeadLetters(w io.Writer, dls []bus.DeadLetter) {
	if len(dls) == 0 {
		fmt.Fprintf(w, "%s is empty: no message was refused as bad input.\n", bus.StreamDLQ)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ SEQ\tTIME (UTC)\tREASON\tORIGINAL SUBJECT\tSTREAM\tSEQ\tBYTES\tERROR")
	byReason := map[string]int{}
	for _, d := range dls {
		size := fmt.Sprint(d.Size)
		if d.Truncated {
			size += "+"
		}
		msg := d.Error
		if len(msg) > 120 {
			msg = msg[:117] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.Time.UTC().Format(time.DateTime), d.Reason,
			d.OriginalSubject, d.OriginalStream, d.OriginalSeq, size, msg)
		byReason[d.Reason]++
	}
	tw.Flush()
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "%d dead letters:", len(dls))
	for _, r := range reasons {
		fmt.Fprintf(w, " %s %d", r, byReason[r])
	}
	fmt.Fprintln(w)
}
