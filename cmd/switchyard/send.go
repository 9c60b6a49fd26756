package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/receiver"
)

func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("send", "send --config FILE --source NAME [--url URL] EVENT.json", stderr)
	path := fs.String("config", "config.yaml", "configuration `file` (for the source's secret and path)")
	source := fs.String("source", "", "source `name` to sign as")
	target := fs.String("url", "", "`URL` to post to (default: the source's path on server.listen)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
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
	var src *config.Source
	var names []string
	for i := range cfg.Sources {
		names = append(names, cfg.Sources[i].Name)
		if cfg.Sources[i].Name == *source {
			src = &cfg.Sources[i]
		}
	}
	if src == nil {
		return &exitError{code: 2, msg: fmt.Sprintf("no source %q in %s (sources: %s)", *source, *path, strings.Join(names, ", "))}
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	secret := ""
	if s := src.AllSecrets(); len(s) > 0 {
		secret = s[0].Reveal()
	}
	u := *target
	if u == "" {
		u = "http://" + dialAddr(cfg.Server.Listen) + src.Path
	}
	// Some schemes (twilio, hubspot) sign the URL as well as the body.
	headers, err := receiver.SignRequest(src.Provider, secret, u, "application/json", body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = headers
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w (is switchyard serve running?)", u, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s\n%s\n", resp.Proto, resp.Status, bytes.TrimSpace(answer))
	if resp.StatusCode >= 300 {
		return &exitError{code: 1}
	}
	return nil
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
