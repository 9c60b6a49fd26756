package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/dryrun"
	"github.com/switchyard/switchyard/receiver"
)

func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("send", "send --config FILE --source NAME [--url URL] [--header 'K: V']... [--ed25519-key FILE] EVENT.json (JSON Lines: one event per line)", stderr)
	path := fs.String("config", "config.yaml", "configuration `file` (for the source's secret and path)")
	source := fs.String("source", "", "source `name` to sign as")
	target := fs.String("url", "", "`URL` to post to (default: the source's path on server.listen)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	keyFile := fs.String("ed25519-key", "", "`file` holding the sender's Ed25519 private key (hex or base64), for an ed25519 source")
	var headers headerFlags
	fs.Var(&headers, "header", "a request `header` 'Name: value' to add, such as 'X-GitHub-Event: push' (repeatable; Content-Type replaces application/json)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *source == "" {
		fs.Usage()
		return &exitError{code: 2, msg: "send needs --source and one EVENT.json"}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return report(stdout, err)
	}
	var sc *config.Source
	var names []string
	for i := range cfg.Sources {
		names = append(names, cfg.Sources[i].Name)
		if cfg.Sources[i].Name == *source {
			sc = &cfg.Sources[i]
		}
	}
	if sc == nil {
		return &exitError{code: 2, msg: fmt.Sprintf("no source %q in %s (sources: %s)", *source, *path, strings.Join(names, ", "))}
	}
	src, err := app.NewSource(*sc)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("source %q: %v (run switchyard check --config %s)", sc.Name, err, *path)}
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var key ed25519.PrivateKey
	if *keyFile != "" {
		text, err := os.ReadFile(*keyFile)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("--ed25519-key: %v", err)}
		}
		if key, err = receiver.ParseEd25519Key(string(text)); err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("--ed25519-key %s: %v", *keyFile, err)}
		}
	}
	u := *target
	if u == "" {
		u = "http://" + dialAddr(cfg.Server.Listen) + sc.Path
	}
	contentType := "application/json"
	if ct := headers.h.Get("Content-Type"); ct != "" {
		contentType = ct
	}
	if src.Unauthenticated {
		fmt.Fprintf(stderr, "source %q verifies nothing (verify: {type: none}): posting without a signature\n", sc.Name)
	}
	// A file of several JSON values, one per line, is several events, as
	// switchyard test reads it; each is posted on its own.
	bodies := dryrun.SplitBodies(body)
	failed := 0
	for i, b := range bodies {
		if len(bodies) > 1 {
			fmt.Fprintf(stdout, "== %s, event %d of %d\n", fs.Arg(0), i+1, len(bodies))
		}
		status, err := post(ctx, src, sc, b, u, contentType, key, headers.h, *timeout, stdout)
		if err != nil {
			return err
		}
		if status >= 300 {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// post signs body as sc's sender would and posts it to u, printing the
// answer; it returns the answer's status.
func post(ctx context.Context, src receiver.Source, sc *config.Source, body []byte, u, contentType string, key ed25519.PrivateKey,
	extra http.Header, timeout time.Duration, stdout io.Writer) (int, error) {
	// Some schemes sign the URL (twilio, hubspot), or carry a token or
	// the body's hash in it.
	signed, u, err := src.Sign(body, u, contentType, key)
	if errors.Is(err, receiver.ErrCannotSign) {
		return 0, &exitError{code: 2, msg: fmt.Sprintf("source %q (provider %s): %v", sc.Name, sc.Provider, err)}
	}
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", contentType)
	for k, vs := range signed {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s: %w (is switchyard serve running?)", redactURL(u, sc), err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s\n%s\n", resp.Proto, resp.Status, bytes.TrimSpace(answer))
	return resp.StatusCode, nil
}

// redactURL hides a token a source carries in its query (verify.query).
func redactURL(u string, sc *config.Source) string {
	if sc.Verify == nil || sc.Verify.Query == "" {
		return u
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return "the source's URL"
	}
	q := parsed.Query()
	if q.Has(sc.Verify.Query) {
		q.Set(sc.Verify.Query, "<secret>")
		parsed.RawQuery = q.Encode()
	}
	return parsed.String()
}

// dialAddr turns a listen address (":8080", "0.0.0.0:8080") into one to
// connect to.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
