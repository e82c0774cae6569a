package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestMeasureReadmeExample runs the README's worked example (a committed
// measurement, no BPF) and checks that the README shows exactly its output.
func TestMeasureReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	const start = "### A recommendation worked through"
	i := strings.Index(s, start)
	if i < 0 {
		t.Fatal("README lacks the worked example")
	}
	s = s[i:]
	// The command: the first sh block; its output: the next plain block.
	cmdStart := strings.Index(s, "```sh\n") + len("```sh\n")
	cmdEnd := cmdStart + strings.Index(s[cmdStart:], "```")
	cmdline := strings.ReplaceAll(s[cmdStart:cmdEnd], "\\\n", " ")
	outStart := cmdEnd + strings.Index(s[cmdEnd+3:], "```\n") + 3 + len("```\n")
	outEnd := outStart + strings.Index(s[outStart:], "```")
	want := s[outStart:outEnd]
	if len(want) < 200 {
		t.Fatalf("README example output too short: %q", want)
	}

	args := strings.Fields(cmdline)
	if len(args) < 2 || args[0] != "ringwise" || args[1] != "measure" {
		t.Fatalf("command %q", cmdline)
	}
	for j, a := range args {
		if strings.HasPrefix(a, "docs/") {
			args[j] = "../../" + a
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), args[1:], &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if out.String() != want {
		t.Errorf("README output differs from the command's; regenerate it.\n--- command\n%s\n--- README\n%s", out.String(), want)
	}
	for _, w := range []string{"SIMULATED", "modeled Falco's layout", "base_syscalls.custom_set: [!fcntl]", "Falco's drain"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

func TestMeasureFlagErrors(t *testing.T) {
	for args, want := range map[string]string{
		"measure --load x --falco-syscalls 0":                  "is a number: give syscall names",
		"measure --load x --falco-syscalls nosuch":             "no such syscall",
		"measure --load x --record-bytes 1":                    "want LIFECYCLE,SYSCALL",
		"measure --load x --cpus-for-each-buffer 0":            "want >= 1",
		"measure --load ../../docs/falco-example/measure.json": "drain is unknown",
		"sensor --syscalls 0":                                  "is a number: give syscall names",
		"sensor --shed-syscalls read,1":                        "is a number: give syscall names",
		"sensor --syscalls read,nosuch":                        "no such syscall",
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), strings.Fields(args), &out, &errb); code == 0 || !strings.Contains(errb.String(), want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", args, code, errb.String(), want)
		}
	}
}
