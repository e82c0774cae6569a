package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// Record kinds in a replay file: uvarint kind, uvarint length, payload.
const (
	replaySnapshot = 0
	replayRaw      = 1
)

// DefaultReplayRate is `ringwise replay play`'s default: raw batches per
// second per virtual node (about a node's rate under the lab's flood).
const DefaultReplayRate = 50.0

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "record" && args[0] != "play") {
		fmt.Fprint(stderr, `Usage:
  ringwise replay record --nats URL --node NODE --out FILE   record a node's snapshot and raw batches from RINGWISE_RAW
  ringwise replay play   --nats URL --in FILE --nodes N [--prefix vnode-] [--rate R] [--limit RECORDS]
                         publish them again as N distinct nodes (PREFIX0..PREFIX<N-1>), R raw batches per second per node
`)
		return errUsage
	}
	if args[0] == "record" {
		return replayRecord(ctx, args[1:], stderr)
	}
	return replayPlay(ctx, args[1:], stderr)
}

func replayRecord(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("replay record", "replay record --nats URL --node NODE --out FILE", stderr)
	var nf natsClientFlags
	nf.register(fs)
	node := fs.String("node", "", "the node whose raw stream to record (required)")
	out := fs.String("out", "", "file to write (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *node == "" || *out == "" {
		return errors.New("--node and --out are required")
	}
	nc, js, err := connectJS(ctx, &nf, bus.RoleAdmin, "", "ringwise-replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	cons, err := js.OrderedConsumer(ctx, bus.StreamRaw, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.SnapshotSubject(*node), bus.RawSubject(*node)}})
	if err != nil {
		return fmt.Errorf("stream %s: %w", bus.StreamRaw, err)
	}
	var n, bytes int
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return fmt.Errorf("stream %s: %w", bus.StreamRaw, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			kind := uint64(replayRaw)
			if m.Subject() == bus.SnapshotSubject(*node) {
				kind = replaySnapshot
			}
			var hdr [2 * binary.MaxVarintLen64]byte
			k := binary.PutUvarint(hdr[:], kind)
			k += binary.PutUvarint(hdr[k:], uint64(len(m.Data())))
			w.Write(hdr[:k])
			w.Write(m.Data())
			n++
			bytes += len(m.Data())
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ringwise replay: recorded %d messages (%d bytes) of node %s to %s\n", n, bytes, *node, *out)
	return nil
}

type replayRecordEntry struct {
	kind uint64
	data []byte
}

func readReplay(path string) ([]replayRecordEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []replayRecordEntry
	for {
		kind, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, len(out)+1, err)
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(event.MaxBatchBytes) {
			return nil, fmt.Errorf("%s: record %d: bad length %d: %v", path, len(out)+1, n, err)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, len(out)+1, err)
		}
		out = append(out, replayRecordEntry{kind, data})
	}
}

func replayPlay(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("replay play", "replay play --nats URL --in FILE --nodes N [--prefix vnode-] [--rate R]", stderr)
	var nf natsClientFlags
	nf.register(fs)
	in := fs.String("in", "", "file written by 'ringwise replay record' (required)")
	nodes := fs.Int("nodes", 1, "virtual nodes to publish as")
	prefix := fs.String("prefix", "vnode-", "virtual node names are PREFIX0 … PREFIX<N-1>")
	rate := fs.Float64("rate", DefaultReplayRate, "raw batches per second per virtual node (0: as fast as NATS takes them)")
	limit := fs.Int("limit", 0, "publish only the file's first N records (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" || *nodes < 1 {
		return errors.New("--in and --nodes >= 1 are required")
	}
	recs, err := readReplay(*in)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < len(recs) {
		recs = recs[:*limit]
	}
	names := make([]string, *nodes)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", *prefix, i)
		if err := bus.ValidNode(names[i]); err != nil {
			return fmt.Errorf("--prefix: %w", err)
		}
	}
	nc, js, err := connectJS(ctx, &nf, bus.RoleAdmin, "", "ringwise-replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	pub := bus.JetStreamPublisher{JS: js}
	codec := event.NewCodec()
	var b event.Batch
	type acc struct {
		st      event.Stats
		batches uint64
	}
	per := make([]acc, len(names))
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) / *rate)
	}
	start := time.Now()
	next := start
	var sent int
	for ri, rec := range recs {
		for i, node := range names {
			var m bus.Msg
			switch rec.kind {
			case replaySnapshot:
				s, err := event.DecodeSnapshot(rec.data)
				if err != nil {
					return fmt.Errorf("%s: record %d: %w", *in, ri+1, err)
				}
				s.Node = node
				data, err := event.EncodeSnapshot(s)
				if err != nil {
					return err
				}
				m = bus.Msg{Subject: bus.SnapshotSubject(node), ID: fmt.Sprintf("%s.%s.%d.snapshot.%d", node, s.BootID, s.SensorStartNs, s.Part),
					Data: data, Schema: event.SchemaVersion}
				per[i].st.Node, per[i].st.BootID, per[i].st.SensorStartNs = node, s.BootID, s.SensorStartNs
			default:
				if err := codec.Decode(rec.data, &b); err != nil {
					return fmt.Errorf("%s: record %d: %w", *in, ri+1, err)
				}
				b.Node = node
				for _, e := range b.Events {
					if c := int(e.Type.Category()); c < event.NumCategories {
						per[i].st.Counters.Attempted[c]++
						per[i].st.Counters.Delivered[c]++
					}
				}
				data, err := codec.Encode(&b)
				if err != nil {
					return err
				}
				m = bus.Msg{Subject: bus.RawSubject(node), ID: b.MsgID(), Data: data, Schema: event.SchemaVersion}
				st := &per[i].st
				st.Node, st.BootID, st.SensorStartNs, st.LastBatchSeq = node, b.BootID, b.SensorStartNs, b.Seq
				per[i].batches++
			}
			if err := pub.Publish(ctx, m); err != nil {
				return err
			}
			sent++
		}
		if rec.kind == replayRaw && interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
	}
	// Final stats per virtual node: what it "delivered", for the analyzer.
	for i := range per {
		st := per[i].st
		st.Batches, st.Final, st.TimeUnixNs = per[i].batches, true, time.Now().UnixNano()
		data, _ := json.Marshal(&st)
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject(names[i]), Data: data}); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(stderr, "ringwise replay: published %d messages as %d nodes in %v (%.0f messages/s)\n", sent, len(names), el.Round(time.Millisecond), float64(sent)/el.Seconds())
	return nil
}
