package bus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Roles: each ringwise service connects as its own NATS identity with only
// the permissions its role needs (see RolePermissions).
type Role string

const (
	RoleAdmin    Role = "admin"    // `ringwise nats` itself: creates and repairs the streams
	RoleSensor   Role = "sensor"   // one per node: publishes that node's raw, snapshot and stats, answers its proc lookups
	RoleEnricher Role = "enricher" // reads RINGWISE_RAW, writes RINGWISE_ENRICHED and RINGWISE_DLQ, uses its KV buckets
	RoleAnalyzer Role = "analyzer" // reads RINGWISE_ENRICHED and RINGWISE_STATS, dead-letters what it cannot use
)

// EnvNATSPassword is the environment variable a service reads its NATS
// password from when --nats-user is given without --nats-password-file:
// never a command-line flag, which `ps` shows to every user.
const EnvNATSPassword = "RINGWISE_NATS_PASSWORD"

// SubjectService is where services publish their own counters (core NATS,
// no stream): ringwise.svc.<role>.<instance>. The analyzer shows them in
// /api/summary.
const SubjectService = subjectRoot + "svc."

// EnricherBuckets are the JetStream KV / object store buckets enrichers may
// use (their streams are KV_<name> and OBJ_<name>). NATS permissions match
// whole subject tokens, not prefixes, so every bucket is listed by name.
func EnricherBuckets() []string {
	return []string{"RINGWISE_LEASES", "RINGWISE_CHECKPOINTS", "RINGWISE_MEMBERS", "RINGWISE_OWNERS"}
}

// InboxPrefix is the reply-subject prefix of a role's connections (node
// only for sensors). Each role has its own, so that no identity may
// subscribe to the replies meant for another (a /proc lookup reply carries
// a command line; a JetStream API reply, a stream's data).
func InboxPrefix(r Role, node string) string {
	if r == RoleSensor {
		return "_INBOX_sensor_" + node
	}
	return "_INBOX_" + string(r)
}

// Permissions are one identity's allowed subjects; everything else is
// denied by the server.
type Permissions struct {
	Publish   []string
	Subscribe []string
	// AllowResponses lets the identity answer requests it received (the
	// sensor's /proc lookups) without a publish permission on _INBOX.>.
	AllowResponses bool
}

// consumeAPI is what reading stream through durable pull consumers needs:
// create (with one or several filters), info, pull, ack, stream info.
func consumeAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.ACK." + stream + ".>",
	}
}

// ownStreamAPI is full use of a stream the identity owns (a KV or object
// store bucket): create, update, info, purge, delete, get, consumers, flow
// control.
func ownStreamAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.*." + stream,
		"$JS.API.STREAM.MSG.*." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.*." + stream,
		"$JS.API.CONSUMER.*." + stream + ".>",
		"$JS.API.CONSUMER.*.*." + stream + ".>",
		"$JS.FC." + stream + ".>",
		"$JS.ACK." + stream + ".>",
	}
}

// RolePermissions returns the least privilege of role r (node: the
// sensor's node). RoleAdmin returns nil: everything is allowed.
func RolePermissions(r Role, node string) (*Permissions, error) {
	switch r {
	case RoleAdmin:
		return nil, nil
	case RoleSensor:
		if err := ValidNode(node); err != nil {
			return nil, fmt.Errorf("sensor permissions: %w", err)
		}
		return &Permissions{
			// Publishing to a stream with acks needs no $JS.API subject:
			// the ack comes back on the identity's own inbox.
			Publish: []string{RawSubject(node), SnapshotSubject(node), StatsSubject(node),
				"$JS.API.STREAM.INFO." + StreamRaw, "$JS.API.STREAM.INFO." + StreamStats},
			Subscribe:      []string{ProcSubject(node), InboxPrefix(r, node) + ".>"},
			AllowResponses: true,
		}, nil
	case RoleEnricher:
		pub := []string{PrefixEnriched + ">", PrefixDLQ + ">", PrefixProc + "*", SubjectService + string(r) + ".>",
			"$JS.API.STREAM.INFO." + StreamEnriched, "$JS.API.STREAM.INFO." + StreamDLQ,
			// Replaying the raw stream from a sequence (hand-over) and
			// dropping its own consumers.
			"$JS.API.STREAM.MSG.GET." + StreamRaw, "$JS.API.DIRECT.GET." + StreamRaw, "$JS.API.DIRECT.GET." + StreamRaw + ".>",
			"$JS.API.CONSUMER.DELETE." + StreamRaw + ".>",
			// What a previous owner already published (take-over).
			"$JS.API.STREAM.MSG.GET." + StreamEnriched, "$JS.API.DIRECT.GET." + StreamEnriched, "$JS.API.DIRECT.GET." + StreamEnriched + ".>",
			// Where a node's enriched subject ends (take-over, fencing).
			"$JS.API.STREAM.MSG.GET." + StreamEnriched, "$JS.API.DIRECT.GET." + StreamEnriched, "$JS.API.DIRECT.GET." + StreamEnriched + ".>",
			// Account limits, which creating a KV bucket looks up.
			"$JS.API.INFO",
		}
		pub = append(pub, consumeAPI(StreamRaw)...)
		for _, b := range EnricherBuckets() {
			pub = append(pub, "$KV."+b+".>", "$O."+b+".>")
			pub = append(pub, ownStreamAPI("KV_"+b)...)
			pub = append(pub, ownStreamAPI("OBJ_"+b)...)
		}
		return &Permissions{Publish: pub, Subscribe: []string{InboxPrefix(r, "") + ".>"}}, nil
	case RoleAnalyzer:
		// Reading the dead letters too (`ringwise dlq`).
		pub := []string{"$JS.API.STREAM.INFO." + StreamDLQ, "$JS.API.STREAM.MSG.GET." + StreamDLQ,
			"$JS.API.DIRECT.GET." + StreamDLQ, "$JS.API.DIRECT.GET." + StreamDLQ + ".>"}
		pub = append(pub, consumeAPI(StreamEnriched)...)
		pub = append(pub, consumeAPI(StreamStats)...)
		// Its alerts are its output, and the dead letters of what it
		// reads (poison, or a message past MaxDeliver, see DLQSubject):
		// without these its consume loop waited out a publish timeout per
		// poison message, which one node's junk stats turned into a stall.
		pub = append(pub, SubjectAlerts, PrefixDLQ+string(KindEnriched)+".*", PrefixDLQ+string(KindStats)+".*")
		return &Permissions{Publish: pub, Subscribe: []string{InboxPrefix(r, "") + ".>", SubjectService + ">"}}, nil
	}
	return nil, fmt.Errorf("unknown role %q", r)
}

// Auth is how a service authenticates to NATS. The zero value connects
// anonymously.
type Auth struct {
	// CredsFile is an nkey seed file (as `ringwise nats --init-auth`
	// writes: one line starting with "SU") or a NATS .creds file (JWT and
	// seed).
	CredsFile string
	// User and Password authenticate by name; the password comes from a
	// file or EnvNATSPassword, never from a flag.
	User, Password string
	// CAFile, when set, is the PEM root the server's TLS certificate must
	// chain to (tls:// URLs).
	CAFile string
	// Role and Node choose the inbox prefix (InboxPrefix); with
	// credentials, the server's permissions expect it.
	Role Role
	Node string
}

// Enabled reports whether a identity is configured.
func (a Auth) Enabled() bool { return a.CredsFile != "" || a.User != "" }

// Options returns the NATS options that authenticate with a.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.CredsFile != "" && a.User != "":
		return nil, errors.New("NATS credentials: give either a creds file or a user, not both")
	case a.CredsFile != "":
		data, err := os.ReadFile(a.CredsFile)
		if err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
		if strings.Contains(string(data), "-----BEGIN NATS USER JWT-----") {
			opts = append(opts, nats.UserCredentials(a.CredsFile))
		} else {
			opt, err := nats.NkeyOptionFromSeed(a.CredsFile)
			if err != nil {
				return nil, fmt.Errorf("NATS credentials %s: not an nkey seed file nor a .creds file: %w", a.CredsFile, err)
			}
			opts = append(opts, opt)
		}
	case a.User != "":
		if a.Password == "" {
			return nil, fmt.Errorf("NATS user %q: no password (set %s or give a password file)", a.User, EnvNATSPassword)
		}
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.Enabled() && a.Role != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(a.Role, a.Node)))
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	return opts, nil
}

// ReadPasswordFile reads a password file: its first line, without the line
// end.
func ReadPasswordFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("password file %s: empty", path)
	}
	return pw, nil
}

// AuthFiles is what WriteAuthConfig wrote.
type AuthFiles struct {
	Config string            // the NATS config file
	Seeds  map[string]string // identity name (admin, enricher, analyzer, sensor-<node>) → nkey seed file
}

// AuthConfigFile is the config file name WriteAuthConfig writes in its dir.
const AuthConfigFile = "nats.conf"

// SeedFile is the seed file name of an identity in an auth dir.
func SeedFile(dir, identity string) string { return filepath.Join(dir, identity+".nk") }

// IdentityName is the identity of role r (node for sensors): the seed file
// name WriteAuthConfig gives it.
func IdentityName(r Role, node string) string {
	if r == RoleSensor {
		return "sensor-" + node
	}
	return string(r)
}

// WriteAuthConfig creates dir (mode 0700) with a NATS config that admits
// one nkey identity per role — admin, enricher, analyzer and a sensor per
// node — each with RolePermissions, and each identity's seed in its own
// file (mode 0600). Existing files are never overwritten.
func WriteAuthConfig(dir string, nodes []string) (AuthFiles, error) {
	if len(nodes) == 0 {
		return AuthFiles{}, errors.New("auth config: no nodes (a sensor identity is made per node)")
	}
	type ident struct {
		name string
		role Role
		node string
	}
	ids := []ident{{"admin", RoleAdmin, ""}, {"enricher", RoleEnricher, ""}, {"analyzer", RoleAnalyzer, ""}}
	seen := map[string]bool{}
	for _, n := range nodes {
		if err := ValidNode(n); err != nil {
			return AuthFiles{}, fmt.Errorf("auth config: %w", err)
		}
		if seen[n] {
			return AuthFiles{}, fmt.Errorf("auth config: node %q given twice", n)
		}
		seen[n] = true
		ids = append(ids, ident{IdentityName(RoleSensor, n), RoleSensor, n})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return AuthFiles{}, fmt.Errorf("auth config: %w", err)
	}
	files := AuthFiles{Config: filepath.Join(dir, AuthConfigFile), Seeds: map[string]string{}}
	for _, p := range append([]string{files.Config}, func() []string {
		var out []string
		for _, id := range ids {
			out = append(out, SeedFile(dir, id.name))
		}
		return out
	}()...) {
		if _, err := os.Stat(p); err == nil {
			return AuthFiles{}, fmt.Errorf("auth config: %s exists; not overwriting credentials (remove the directory to start over)", p)
		}
	}
	var b strings.Builder
	b.WriteString("# NATS config written by `ringwise nats --init-auth`: one nkey identity per\n")
	b.WriteString("# ringwise service, each with only the permissions its role needs.\n")
	b.WriteString("# Seeds (private keys) are in the *.nk files next to this one; give each\n")
	b.WriteString("# service its own with --nats-creds FILE.\n")
	b.WriteString("#\n# TLS: uncomment and point at your certificate (clients: tls:// URL, --nats-ca).\n")
	b.WriteString("# tls {\n#   cert_file: \"server-cert.pem\"\n#   key_file: \"server-key.pem\"\n# }\n\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, id := range ids {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return AuthFiles{}, fmt.Errorf("auth config: nkey for %s: %w", id.name, err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return AuthFiles{}, fmt.Errorf("auth config: nkey for %s: %w", id.name, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return AuthFiles{}, fmt.Errorf("auth config: nkey for %s: %w", id.name, err)
		}
		seedPath := SeedFile(dir, id.name)
		if err := os.WriteFile(seedPath, append(seed, '\n'), 0o600); err != nil {
			return AuthFiles{}, fmt.Errorf("auth config: %w", err)
		}
		files.Seeds[id.name] = seedPath
		perms, err := RolePermissions(id.role, id.node)
		if err != nil {
			return AuthFiles{}, fmt.Errorf("auth config: %w", err)
		}
		fmt.Fprintf(&b, "    # %s\n    {nkey: %q", id.name, pub)
		if perms != nil {
			b.WriteString(", permissions: {\n")
			fmt.Fprintf(&b, "      publish: {allow: %s}\n", quoteList(perms.Publish))
			fmt.Fprintf(&b, "      subscribe: {allow: %s}\n", quoteList(perms.Subscribe))
			if perms.AllowResponses {
				b.WriteString("      allow_responses: true\n")
			}
			b.WriteString("    }")
		}
		b.WriteString("}\n")
	}
	b.WriteString("  ]\n}\n")
	if err := os.WriteFile(files.Config, []byte(b.String()), 0o600); err != nil {
		return AuthFiles{}, fmt.Errorf("auth config: %w", err)
	}
	return files, nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
