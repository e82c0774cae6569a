package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
)

// natsClientFlags are the connection flags every service shares. Secrets
// never come from a flag value (`ps` shows command lines to every user):
// a file, or the environment.
type natsClientFlags struct {
	url          string
	creds        string
	user         string
	passwordFile string
	ca           string
	memory       bool
}

func (f *natsClientFlags) register(fs *flag.FlagSet) {
	f.registerConn(fs)
	fs.BoolVar(&f.memory, "memory-streams", false, "create missing streams in memory instead of on file (anonymous connections only: an identity with least privilege cannot create streams)")
}

// registerConn registers the connection flags only (no stream creation).
func (f *natsClientFlags) registerConn(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats", "", "NATS URL (required), e.g. nats://127.0.0.1:4222 or tls://host:4222")
	fs.StringVar(&f.creds, "nats-creds", "", "this service's NATS identity: an nkey seed file (as 'ringwise nats --init-auth' writes) or a NATS .creds file")
	fs.StringVar(&f.user, "nats-user", "", "NATS user name; the password comes from --nats-password-file or $"+bus.EnvNATSPassword)
	fs.StringVar(&f.passwordFile, "nats-password-file", "", "file whose first line is the password of --nats-user")
	fs.StringVar(&f.ca, "nats-ca", "", "PEM file of the CA that signed the NATS server's TLS certificate")
}

// auth builds the identity of role (node: the sensor's).
func (f *natsClientFlags) auth(role bus.Role, node string) (bus.Auth, error) {
	a := bus.Auth{CredsFile: f.creds, User: f.user, CAFile: f.ca, Role: role, Node: node}
	if f.passwordFile != "" && f.user == "" {
		return a, errors.New("--nats-password-file needs --nats-user")
	}
	if f.user != "" {
		switch {
		case f.passwordFile != "":
			pw, err := bus.ReadPasswordFile(f.passwordFile)
			if err != nil {
				return a, fmt.Errorf("--nats-password-file: %w", err)
			}
			a.Password = pw
		default:
			a.Password = os.Getenv(bus.EnvNATSPassword)
			if a.Password == "" {
				return a, fmt.Errorf("--nats-user %q: no password: set $%s or --nats-password-file", f.user, bus.EnvNATSPassword)
			}
		}
	}
	return a, nil
}

// connectJS connects as role and makes sure the streams the role uses
// exist. Anonymous connections (a loopback server without auth) create or
// update every stream, as before; an identity only checks that its streams
// exist, since creating them is the admin's (`ringwise nats`).
func connectJS(ctx context.Context, f *natsClientFlags, role bus.Role, node, name string) (*nats.Conn, jetstream.JetStream, error) {
	if f.url == "" {
		return nil, nil, errors.New("--nats URL is required (e.g. nats://127.0.0.1:4222); 'ringwise up' runs everything with an embedded server")
	}
	a, err := f.auth(role, node)
	if err != nil {
		return nil, nil, err
	}
	opts, err := a.Options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := bus.Connect(f.url, name, opts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if a.Enabled() {
		err = bus.CheckStreams(sctx, js, roleStreams(role)...)
	} else {
		err = bus.EnsureStreams(sctx, js, bus.StreamOptions{Memory: f.memory, Replicas: bus.AutoReplicas(nc)})
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// roleStreams are the streams a role needs.
func roleStreams(r bus.Role) []string {
	switch r {
	case bus.RoleSensor:
		return []string{bus.StreamRaw, bus.StreamStats}
	case bus.RoleEnricher:
		return []string{bus.StreamRaw, bus.StreamEnriched, bus.StreamDLQ}
	case bus.RoleAnalyzer:
		return []string{bus.StreamEnriched, bus.StreamStats}
	}
	return nil
}
