package bus

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Key-value buckets of scaled-out enrichers (see docs/scaling.md).
const (
	// BucketMembers holds one key per live enricher, renewed by its
	// heartbeat; the bucket TTL removes a dead one.
	BucketMembers = "RINGWISE_MEMBERS"
	// BucketLeases holds one key per owned node; its revision is the
	// owner's fencing token, and the bucket TTL frees a dead owner's lease.
	BucketLeases = "RINGWISE_LEASES"
	// BucketCheckpoints holds one checkpoint per node (process table and
	// the raw-stream sequence it covers), written by compare-and-set.
	BucketCheckpoints = "RINGWISE_CHECKPOINTS"
)

// Defaults of the buckets.
const (
	// DefaultMemberTTL is how long an enricher that stopped heartbeating
	// stays a member.
	DefaultMemberTTL = 3 * time.Second
	// DefaultLeaseTTL is how long a node lease outlives its last renewal:
	// the bound on a dead owner's take-over time, with DefaultMemberTTL.
	DefaultLeaseTTL = 3 * time.Second
	// DefaultCheckpointMaxBytes bounds one checkpoint (the server's
	// max_payload bounds it too).
	DefaultCheckpointMaxBytes = 16 << 20
)

// BucketOptions configures EnsureBuckets; zero fields take the defaults.
type BucketOptions struct {
	Memory             bool
	Replicas           int
	MemberTTL          time.Duration
	LeaseTTL           time.Duration
	CheckpointMaxBytes int32
}

// Buckets are the KV buckets of scaled-out enrichers.
type Buckets struct {
	Members, Leases, Checkpoints jetstream.KeyValue
}

// EnsureBuckets creates or updates the members, leases and checkpoints
// buckets.
func EnsureBuckets(ctx context.Context, js jetstream.JetStream, o BucketOptions) (Buckets, error) {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.MemberTTL == 0 {
		o.MemberTTL = DefaultMemberTTL
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.CheckpointMaxBytes == 0 {
		o.CheckpointMaxBytes = DefaultCheckpointMaxBytes
	}
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	var b Buckets
	for _, c := range []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&b.Members, jetstream.KeyValueConfig{Bucket: BucketMembers, TTL: o.MemberTTL, Storage: storage,
			Description: "live ringwise enrichers (TTL heartbeats)"}},
		{&b.Leases, jetstream.KeyValueConfig{Bucket: BucketLeases, TTL: o.LeaseTTL, Storage: storage,
			Description: "node ownership leases; the revision is the fencing token"}},
		{&b.Checkpoints, jetstream.KeyValueConfig{Bucket: BucketCheckpoints, Storage: storage, MaxValueSize: o.CheckpointMaxBytes,
			Description: "per-node process table and raw-stream sequence"}},
	} {
		c.cfg.Replicas, c.cfg.History = o.Replicas, 1
		// Bind to a bucket that exists; create it otherwise. (Two enrichers
		// calling CreateOrUpdateKeyValue on the same new R3 bucket at once
		// both hung until their deadline on nats-server 2.15.2.)
		kv, err := js.KeyValue(ctx, c.cfg.Bucket)
		if err != nil {
			kv, err = js.CreateKeyValue(ctx, c.cfg)
			if err != nil {
				if kv2, err2 := js.KeyValue(ctx, c.cfg.Bucket); err2 == nil {
					kv, err = kv2, nil // created by another meanwhile
				}
			}
		}
		if err != nil {
			return Buckets{}, fmt.Errorf("KV bucket %s: %w", c.cfg.Bucket, err)
		}
		*c.kv = kv
	}
	return b, nil
}

// NodeKey is node's key in the leases and checkpoints buckets: the name
// itself when KV allows its characters, otherwise "x-" and its hex.
func NodeKey(node string) string {
	for _, ch := range []byte(node) {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '='
		if !ok {
			return "x-" + hex.EncodeToString([]byte(node))
		}
	}
	return node
}

// AutoReplicas is the replica count that follows the cluster size: 3 when
// the server nc is connected to knows 3 or more servers, else 1.
func AutoReplicas(nc *nats.Conn) int {
	if nc == nil {
		return 1
	}
	if len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}
