package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/ringwise/ringwise/services/bus"
)

// authServer is an embedded server run from the config that
// WriteAuthConfig writes, with the streams created by its admin.
type authServer struct {
	url   string
	files bus.AuthFiles
}

func startAuthServer(t *testing.T, nodes ...string) authServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "auth")
	files, err := bus.WriteAuthConfig(dir, nodes)
	if err != nil {
		t.Fatalf("WriteAuthConfig: %v", err)
	}
	for name, p := range files.Seeds {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("seed of %s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if _, err := bus.WriteAuthConfig(dir, nodes); err == nil {
		t.Errorf("WriteAuthConfig over existing credentials succeeded; it must never overwrite them")
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{ConfigFile: files.Config, Port: randomPort})
	if err != nil {
		t.Fatalf("StartEmbedded with %s: %v", files.Config, err)
	}
	t.Cleanup(srv.Shutdown)
	if srv.Anonymous() {
		t.Fatalf("server from %s admits anonymous clients", files.Config)
	}
	as := authServer{url: srv.URL(), files: files}
	_, js := as.connect(t, bus.RoleAdmin, "")
	if err := bus.EnsureStreams(testCtx(t), js, bus.StreamOptions{Memory: true}); err != nil {
		t.Fatalf("EnsureStreams as admin: %v", err)
	}
	return as
}

// connect connects as the identity of role (node for sensors) and records
// permission violations the server reports asynchronously.
func (as authServer) connect(t *testing.T, role bus.Role, node string) (*violations, jetstream.JetStream) {
	t.Helper()
	a := bus.Auth{CredsFile: as.files.Seeds[bus.IdentityName(role, node)], Role: role, Node: node}
	opts, err := a.Options()
	if err != nil {
		t.Fatal(err)
	}
	v := &violations{}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { v.add(err) }))
	nc, err := bus.Connect(as.url, "test-"+bus.IdentityName(role, node), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", bus.IdentityName(role, node), err)
	}
	t.Cleanup(nc.Close)
	v.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return v, js
}

type violations struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func (v *violations) add(err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

// wait returns once a violation naming subject arrived (or fails the test).
func (v *violations) wait(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(e, "ermissions") && strings.Contains(e, subject) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("no permissions violation for %q; got %v", subject, v.errs)
}

// randomPort makes a server with a config file pick a free port.
const randomPort = -1

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func subjectMsgs(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(testCtx(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func TestSensorIdentityLeastPrivilege(t *testing.T) {
	as := startAuthServer(t, "a", "b")
	ctx := testCtx(t)
	_, adminJS := as.connect(t, bus.RoleAdmin, "")
	va, sensorA := as.connect(t, bus.RoleSensor, "a")

	// Its own subjects: stored, with acks.
	for _, subj := range []string{bus.RawSubject("a"), bus.SnapshotSubject("a"), bus.StatsSubject("a")} {
		if _, err := sensorA.Publish(ctx, subj, []byte("x")); err != nil {
			t.Errorf("sensor a publishing on %s: %v", subj, err)
		}
	}
	// Another node's: refused by the server, nothing stored.
	for _, subj := range []string{bus.RawSubject("b"), bus.SnapshotSubject("b"), bus.StatsSubject("b"), bus.EnrichedSubject("a"), bus.PrefixDLQ + "raw.a"} {
		if _, err := sensorA.Publish(shortCtx(t), subj, []byte("forged")); err == nil {
			t.Errorf("sensor a publishing on %s: stored; want refused", subj)
		}
		va.wait(t, subj)
	}
	if n := subjectMsgs(t, adminJS, bus.StreamRaw, bus.RawSubject("b")); n != 0 {
		t.Errorf("%d messages on %s published with sensor a's identity", n, bus.RawSubject("b"))
	}
	if n := subjectMsgs(t, adminJS, bus.StreamRaw, bus.RawSubject("a")); n != 1 {
		t.Errorf("%d messages on %s, want 1", n, bus.RawSubject("a"))
	}

	// Enriched events: no consumer, no subscription, no direct get.
	if _, err := adminJS.Publish(ctx, bus.EnrichedSubject("a"), []byte("secret cmdline")); err != nil {
		t.Fatal(err)
	}
	if _, err := sensorA.CreateOrUpdateConsumer(shortCtx(t), bus.StreamEnriched, jetstream.ConsumerConfig{Durable: "spy"}); err == nil {
		t.Errorf("sensor a created a consumer on %s", bus.StreamEnriched)
	}
	sub, err := va.nc.SubscribeSync(bus.PrefixEnriched + ">")
	if err != nil {
		t.Fatal(err)
	}
	va.wait(t, bus.PrefixEnriched+">")
	if _, err := adminJS.Publish(ctx, bus.EnrichedSubject("a"), []byte("more")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("sensor a read enriched data on %s", m.Subject)
	}
	// No deletes, of streams or messages.
	if err := sensorA.DeleteStream(shortCtx(t), bus.StreamEnriched); err == nil {
		t.Errorf("sensor a deleted %s", bus.StreamEnriched)
	}
	if _, err := adminJS.Stream(ctx, bus.StreamEnriched); err != nil {
		t.Errorf("stream %s after sensor a's delete attempt: %v", bus.StreamEnriched, err)
	}
	// Another node's /proc lookups: not for it to answer.
	if _, err := va.nc.SubscribeSync(bus.ProcSubject("b")); err != nil {
		t.Fatal(err)
	}
	va.wait(t, bus.ProcSubject("b"))
}

func TestEnricherAndAnalyzerIdentities(t *testing.T) {
	as := startAuthServer(t, "a")
	ctx := testCtx(t)
	_, sensorJS := as.connect(t, bus.RoleSensor, "a")
	ve, enrJS := as.connect(t, bus.RoleEnricher, "")
	vz, anaJS := as.connect(t, bus.RoleAnalyzer, "")

	// The sensor answers its own /proc lookups for the enricher.
	vs, _ := as.connect(t, bus.RoleSensor, "a")
	if _, err := vs.nc.Subscribe(bus.ProcSubject("a"), func(m *nats.Msg) { _ = m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	if err := vs.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rep, err := ve.nc.Request(bus.ProcSubject("a"), []byte("1"), 5*time.Second)
	if err != nil {
		t.Errorf("enricher's /proc lookup on node a: %v", err)
	} else if string(rep.Data) != "pong" {
		t.Errorf("enricher's /proc lookup on node a: reply %q", rep.Data)
	}

	// The enricher reads raw, writes enriched and dead letters, and uses
	// its buckets.
	if _, err := sensorJS.Publish(ctx, bus.RawSubject("a"), []byte("batch")); err != nil {
		t.Fatal(err)
	}
	cons, err := enrJS.CreateOrUpdateConsumer(ctx, bus.StreamRaw, jetstream.ConsumerConfig{Durable: "enr",
		FilterSubjects: []string{bus.PrefixRaw + ">", bus.PrefixSnapshot + ">"}, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("enricher consumer on %s: %v", bus.StreamRaw, err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		if err := m.DoubleAck(ctx); err != nil {
			t.Errorf("enricher ack: %v", err)
		}
	}
	if got != 1 {
		t.Errorf("enricher fetched %d raw messages, want 1", got)
	}
	for _, subj := range []string{bus.EnrichedSubject("a"), bus.PrefixDLQ + "raw.a"} {
		if _, err := enrJS.Publish(ctx, subj, []byte("out")); err != nil {
			t.Errorf("enricher publishing on %s: %v", subj, err)
		}
	}
	kv, err := enrJS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.EnricherBuckets()[0], Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatalf("enricher bucket %s: %v (violations %v)", bus.EnricherBuckets()[0], err, ve.errs)
	}
	if _, err := kv.Put(ctx, "node.a", []byte("owner")); err != nil {
		t.Errorf("enricher kv put: %v", err)
	}
	if e, err := kv.Get(ctx, "node.a"); err != nil || string(e.Value()) != "owner" {
		t.Errorf("enricher kv get: %v", err)
	}
	if _, err := enrJS.Publish(shortCtx(t), bus.RawSubject("a"), []byte("forged")); err == nil {
		t.Errorf("enricher published raw data as node a")
	}
	ve.wait(t, bus.RawSubject("a"))
	if _, err := enrJS.CreateKeyValue(shortCtx(t), jetstream.KeyValueConfig{Bucket: "OTHER", Storage: jetstream.MemoryStorage}); err == nil {
		t.Errorf("enricher created a bucket that is not its own")
	}

	// The analyzer only reads.
	acons, err := anaJS.CreateOrUpdateConsumer(ctx, bus.StreamEnriched, jetstream.ConsumerConfig{Durable: "ana", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("analyzer consumer on %s: %v", bus.StreamEnriched, err)
	}
	if b, err := acons.Fetch(1, jetstream.FetchMaxWait(5*time.Second)); err != nil {
		t.Fatal(err)
	} else {
		for m := range b.Messages() {
			if string(m.Data()) != "out" {
				t.Errorf("analyzer read %q", m.Data())
			}
			_ = m.Ack()
		}
	}
	if _, err := anaJS.CreateOrUpdateConsumer(ctx, bus.StreamStats, jetstream.ConsumerConfig{Durable: "ana-stats", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Errorf("analyzer consumer on %s: %v", bus.StreamStats, err)
	}
	for _, subj := range []string{bus.EnrichedSubject("a"), bus.StatsSubject("a")} {
		if _, err := anaJS.Publish(shortCtx(t), subj, []byte("forged")); err == nil {
			t.Errorf("analyzer published on %s", subj)
		}
		vz.wait(t, subj)
	}
	// It may dead-letter what it reads (enriched and stats), nothing else.
	for _, subj := range []string{bus.DLQSubject(bus.KindEnriched, "a"), bus.DLQSubject(bus.KindStats, "a")} {
		if _, err := anaJS.Publish(shortCtx(t), subj, []byte("dead letter")); err != nil {
			t.Errorf("analyzer dead-letter on %s: %v", subj, err)
		}
	}
	if _, err := anaJS.Publish(shortCtx(t), bus.DLQSubject(bus.KindRaw, "a"), []byte("forged")); err == nil {
		t.Errorf("analyzer published a raw dead letter")
	}
	vz.wait(t, bus.DLQSubject(bus.KindRaw, "a"))
	if _, err := anaJS.CreateOrUpdateConsumer(shortCtx(t), bus.StreamRaw, jetstream.ConsumerConfig{Durable: "ana-raw"}); err == nil {
		t.Errorf("analyzer created a consumer on %s", bus.StreamRaw)
	}
}

func TestAnonymousAndWrongCredentialsRefused(t *testing.T) {
	as := startAuthServer(t, "a")
	if _, err := bus.Connect(as.url, "anonymous"); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("anonymous connection: err = %v, want refused with a clear error", err)
	}
	// A key the server does not know.
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	stranger := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(stranger, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := bus.Auth{CredsFile: stranger}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Connect(as.url, "stranger", opts...); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("unknown nkey: err = %v, want an authorization error", err)
	}

	// User and password: the right one connects, a wrong one is refused
	// with an error that says so.
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(`authorization { users = [ {user: "analyzer", password: "s3cret-pw"} ] }`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{ConfigFile: conf, Port: randomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := bus.ReadPasswordFile(pwFile)
	if err != nil || pw != "s3cret-pw" {
		t.Fatalf("ReadPasswordFile = %q, %v", pw, err)
	}
	opts, _ = bus.Auth{User: "analyzer", Password: pw}.Options()
	nc, err := bus.Connect(srv.URL(), "right", opts...)
	if err != nil {
		t.Errorf("right password refused: %v", err)
	} else {
		nc.Close()
	}
	opts, _ = bus.Auth{User: "analyzer", Password: "wrong"}.Options()
	_, err = bus.Connect(srv.URL(), "wrong", opts...)
	if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "wrong password") {
		t.Errorf("wrong password: err = %v, want an authorization error that names the cause", err)
	}
	if _, err := (bus.Auth{User: "analyzer"}).Options(); err == nil || !strings.Contains(err.Error(), bus.EnvNATSPassword) {
		t.Errorf("user without password: err = %v, want one naming %s", err, bus.EnvNATSPassword)
	}
}

func TestAnonymousBeyondLoopbackRefused(t *testing.T) {
	_, err := bus.StartEmbedded(bus.EmbeddedOptions{Host: "0.0.0.0"})
	if !errors.Is(err, bus.ErrAnonymousExposed) {
		t.Fatalf("anonymous server on 0.0.0.0: err = %v, want ErrAnonymousExposed", err)
	}
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "10.0.0.1": false, "": false} {
		if got := bus.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestTLSFromConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	conf := filepath.Join(dir, "nats.conf")
	text := fmt.Sprintf("authorization { users = [ {user: \"admin\", password: \"pw\"} ] }\ntls {\n  cert_file: %q\n  key_file: %q\n}\n", certFile, keyFile)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{ConfigFile: conf, Port: randomPort})
	if err != nil {
		t.Fatalf("StartEmbedded with TLS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	if !strings.HasPrefix(srv.URL(), "tls://") {
		t.Errorf("URL = %q, want tls://", srv.URL())
	}
	opts, _ := bus.Auth{User: "admin", Password: "pw", CAFile: certFile}.Options()
	nc, err := bus.Connect(srv.URL(), "tls-client", opts...)
	if err != nil {
		t.Fatalf("TLS connection with the CA: %v", err)
	}
	if !nc.TLSRequired() {
		t.Errorf("connection is not TLS")
	}
	js, _ := jetstream.New(nc)
	if err := bus.EnsureStreams(testCtx(t), js, bus.StreamOptions{Memory: true}); err != nil {
		t.Errorf("EnsureStreams over TLS: %v", err)
	}
	nc.Close()
	// Without the CA the certificate is not trusted.
	opts, _ = bus.Auth{User: "admin", Password: "pw"}.Options()
	if nc, err := bus.Connect(srv.URL(), "no-ca", opts...); err == nil {
		nc.Close()
		t.Errorf("TLS connection without the CA succeeded")
	}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ringwise-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
