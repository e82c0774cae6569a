// Command healthcheck is the health probe of ringwise's runtime images,
// which are FROM scratch and so have no shell, curl or wget: it GETs each
// URL and exits 0 when every one answers 2xx within the timeout, 1
// otherwise (the reason on stderr). Docker's HEALTHCHECK and compose's
// healthcheck run it:
//
//	healthcheck http://127.0.0.1:8222/healthz?js-enabled-only=true
//	healthcheck --bearer-file /run/secrets/http-token http://127.0.0.1:8080/api/summary
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// DefaultTimeout bounds each probe.
const DefaultTimeout = 3 * time.Second

func main() {
	timeout := flag.Duration("timeout", DefaultTimeout, "time allowed for each URL")
	bearerFile := flag.String("bearer-file", "", "file whose first line is a bearer token to send (Authorization: Bearer TOKEN)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: healthcheck [--timeout D] [--bearer-file FILE] URL...\n\nExits 0 when every URL answers a GET with 2xx.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	token := ""
	if *bearerFile != "" {
		b, err := os.ReadFile(*bearerFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck: --bearer-file:", err)
			os.Exit(1)
		}
		token, _, _ = strings.Cut(string(b), "\n")
		token = strings.TrimSpace(token)
	}
	if err := run(context.Background(), *timeout, token, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, timeout time.Duration, token string, urls []string) error {
	if len(urls) == 0 {
		return errors.New("no URL given")
	}
	client := &http.Client{Timeout: timeout}
	for _, u := range urls {
		if err := probe(ctx, client, token, u); err != nil {
			return err
		}
	}
	return nil
}

func probe(ctx context.Context, client *http.Client, token, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return nil
}
