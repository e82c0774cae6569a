package bus_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ringwise/ringwise/services/bus"
)

// With the number of nodes known, the per-node limits of the streams the
// sensors write are sized so that every node's worst case fits the stream:
// the stream-wide byte limit can then never bind.
func TestStreamConfigsStrictPerNode(t *testing.T) {
	so := bus.StreamOptions{MaxBytes: 1 << 30, Nodes: 3}
	cfgs, err := bus.StreamConfigs(so)
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int64{bus.StreamRaw: 2, bus.StreamStats: 1}
	for _, c := range cfgs {
		per, ok := subjects[c.Name]
		if !ok {
			continue
		}
		worst := int64(so.Nodes) * per * c.MaxMsgsPerSubject * bus.StoredMsgBound(c.MaxMsgSize)
		if c.MaxMsgsPerSubject < 1 || worst > c.MaxBytes {
			t.Errorf("%s: %d nodes x %d subjects x %d msgs x %d bytes = %d, above its %d bytes", c.Name, so.Nodes, per, c.MaxMsgsPerSubject, bus.StoredMsgBound(c.MaxMsgSize), worst, c.MaxBytes)
		}
		// One more message per subject would not fit: the limit is the
		// largest strict one, not needlessly small.
		if more := int64(so.Nodes) * per * (c.MaxMsgsPerSubject + 1) * bus.StoredMsgBound(c.MaxMsgSize); more <= c.MaxBytes {
			t.Errorf("%s: %d messages per subject is below the strict limit", c.Name, c.MaxMsgsPerSubject)
		}
		t.Logf("%s: %d bytes, %d messages of %d bytes per node subject", c.Name, c.MaxBytes, c.MaxMsgsPerSubject, c.MaxMsgSize)
	}
	// Without nodes: the defaults, not strict.
	cfgs, err = bus.StreamConfigs(bus.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfgs[0].MaxMsgsPerSubject != bus.DefaultRawMaxMsgsPerNode {
		t.Errorf("without nodes: raw per subject %d, want the default %d", cfgs[0].MaxMsgsPerSubject, bus.DefaultRawMaxMsgsPerNode)
	}
	// An explicit limit that cannot be strict, or a stream too small for
	// one message per node, is an error naming the stream.
	for _, bad := range []bus.StreamOptions{
		{MaxBytes: 1 << 30, Nodes: 3, RawMaxMsgsPerNode: 100_000},
		{MaxBytes: 1 << 20, Nodes: 3},
	} {
		if _, err := bus.StreamConfigs(bad); err == nil || !strings.Contains(err.Error(), bus.StreamRaw) {
			t.Errorf("%+v: err %v, want one naming %s", bad, err, bus.StreamRaw)
		}
	}
}

// PublishingNodes counts the sensor identities of a config, and says when
// an identity may publish as any node.
func TestPublishingNodes(t *testing.T) {
	files, err := bus.WriteAuthConfig(filepath.Join(t.TempDir(), "auth"), []string{"b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(files.Config)
	if err != nil {
		t.Fatal(err)
	}
	nodes, bounded := bus.PublishingNodes(o)
	if !bounded || !slices.Equal(nodes, []string{"a", "b"}) {
		t.Errorf("init-auth config: nodes %v bounded %v, want [a b] true", nodes, bounded)
	}
	for _, wild := range []string{"ringwise.raw.*", "ringwise.>", ">", "ringwise.*.*", "*.stats.*"} {
		o := &server.Options{Users: []*server.User{{Username: "u", Password: "p",
			Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"ringwise.raw.a", wild}}}}}}
		if _, bounded := bus.PublishingNodes(o); bounded {
			t.Errorf("publish allow %q: bounded, want not (any node)", wild)
		}
	}
	o = &server.Options{Users: []*server.User{{Username: "u", Password: "p",
		Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"ringwise.enriched.>", "ringwise.raw.x.y", "ringwise.*.c"}}}}}}
	if nodes, bounded := bus.PublishingNodes(o); !bounded || !slices.Equal(nodes, []string{"c"}) {
		t.Errorf("enriched wildcard and a longer subject: nodes %v bounded %v, want [c] true", nodes, bounded)
	}
	if _, bounded := bus.PublishingNodes(&server.Options{}); bounded {
		t.Errorf("anonymous server: bounded, want not")
	}
}

// A message the stream refuses for good (larger than its MaxMsgSize) is
// dropped and counted by the spool, which goes on with the next one: a
// retry could never succeed and would stop every later batch.
func TestSpoolDropsWhatTheStreamRefuses(t *testing.T) {
	_, js := startJS(t)
	ctx := testCtx(t)
	ensure(t, ctx, js)
	sp := bus.NewSpool(js, 0, nil)
	dropped := 0
	huge := bytes.Repeat([]byte{1}, bus.DefaultRawMaxMsgSize+1)
	if err := sp.Publish(ctx, bus.Msg{Subject: bus.RawSubject("vm"), ID: "big", Data: huge, OnDrop: func() { dropped++ }}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Publish(ctx, bus.Msg{Subject: bus.RawSubject("vm"), ID: "small", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if left := sp.Close(ctx); left != 0 {
		t.Fatalf("%d messages left in the spool", left)
	}
	st := sp.Stats()
	if st.Refused != 1 || st.Sent != 1 || dropped != 1 {
		t.Errorf("spool %+v, OnDrop %d: want 1 refused (dropped), 1 sent", st, dropped)
	}
	if n := streamMsgs(t, ctx, js, bus.StreamRaw); n != 1 {
		t.Errorf("raw stream holds %d messages, want the small one", n)
	}
}

// The spool reuses the payload buffers of stored messages: every stored
// message must still be exactly what was published, while the producer
// overwrites its own buffer after each Publish (as the sensor's codec
// does) and sizes go up and down so buffers of other sizes come back.
func TestSpoolReusesBuffersSafely(t *testing.T) {
	_, js := startJS(t)
	ctx := testCtx(t)
	ensure(t, ctx, js)
	sp := bus.NewSpool(js, 0, nil)
	const n = 40
	want := make([][]byte, n)
	var buf []byte
	for i := range n {
		size := 1 + (i*7919)%5000
		buf = buf[:0]
		for j := 0; j < size; j++ {
			buf = append(buf, byte(i+j))
		}
		want[i] = slices.Clone(buf)
		if err := sp.Publish(ctx, bus.Msg{Subject: bus.RawSubject("vm"), ID: fmt.Sprint("m", i), Data: buf}); err != nil {
			t.Fatal(err)
		}
		clear(buf) // the producer's buffer is its own again
	}
	if left := sp.Close(ctx); left != 0 {
		t.Fatalf("%d messages left in the spool", left)
	}
	s, err := js.Stream(ctx, bus.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if !bytes.Equal(m.Data, want[i]) {
			t.Fatalf("message %d: %d bytes stored differ from the %d published", i+1, len(m.Data), len(want[i]))
		}
	}
}
