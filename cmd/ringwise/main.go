// Command ringwise finds, explains and prevents missing event metadata in
// eBPF syscall monitoring. Each subcommand parses its flags and calls a
// Run function; all logic lives in the packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `ringwise — why your syscall monitor prints proc.name=<NA>, and how to stop it

Usage:
  ringwise lab      [flags]   measure metadata loss per ring size and layout on this node, recommend a size
  ringwise up       [flags]   run sensor + enricher + analyzer in one process (embedded NATS)
  ringwise flood    [flags]   spawn a process flood and record its ground truth
  ringwise analyze  [FILE|-]  analyse Falco JSON output (or ringwise's) for missing metadata
  ringwise measure  [flags]   count this node's syscall/lifecycle load (no records, no ring) and recommend Falco's buf_size_preset
  ringwise sensor   --nats URL [flags]   run the node sensor alone
  ringwise enricher --nats URL [flags]   run an enricher alone
  ringwise analyzer --nats URL [flags]   run the analyzer alone (HTTP /api/summary)
  ringwise nats     [--listen ADDR]      run an embedded NATS server with JetStream for the services above
  ringwise replay   record|play [flags]  record a node's raw stream to a file; publish it again as N virtual nodes at a rate
  ringwise dlq      --nats URL [--json]  list the dead letters: bad input the enricher and analyzer refused

Run 'ringwise COMMAND --help' for the flags of a command.
The sensor needs Linux with BTF (/sys/kernel/btf/vmlinux) and root, or CAP_BPF+CAP_PERFMON.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"up":       cmdUp,
		"lab":      cmdLab,
		"flood":    cmdFlood,
		"analyze":  cmdAnalyze,
		"measure":  cmdMeasure,
		"sensor":   cmdSensor,
		"enricher": cmdEnricher,
		"analyzer": cmdAnalyzer,
		"nats":     cmdNATS,
		"dlq":      cmdDLQ,
		"replay":   cmdReplay,
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "ringwise: unknown command %q\n\n%s", name, usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "ringwise %s: %v\n", name, err)
		return 1
	}
}

// errUsage marks a flag error already printed by the flag set.
var errUsage = errors.New("usage")

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ringwise "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ringwise %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
