package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("serve", "serve --config FILE", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	watch := fs.Duration("watch", 2*time.Second, "check the configuration file for changes this often, and reload it (0: only on SIGHUP)")
	listen := fs.String("listen", "", "`address` to serve on instead of server.listen, such as :9000 (default: $SWITCHYARD_LISTEN, else server.listen)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if *listen == "" {
		*listen = os.Getenv("SWITCHYARD_LISTEN")
	}
	// The address given here holds for every reload too, so that a reload
	// does not see server.listen change.
	load := func() (*config.Config, error) {
		cfg, err := config.Load(*path)
		if err == nil && *listen != "" {
			cfg.Server.Listen = *listen
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w.String())
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads; caught from now on, so that it never kills us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := app.Options{Logger: log, Registerer: reg, WatchEvery: *watch, Load: load}
	if testOptions != nil {
		testOptions(&opts)
	}
	a, err := app.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		a.Stop(context.Background())
		return err
	}
	for _, sc := range cfg.Sources {
		log.Info("source served", "source", sc.Name, "provider", sc.Provider, "url", "http://"+dialAddr(a.Addr())+sc.Path)
	}
	var reloads sync.WaitGroup
	reloads.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration", "file", cfg.File())
				a.Reload(ctx) // logs its outcome
			}
		}
	})
	<-ctx.Done()
	stop() // a second signal now ends the process at once
	reloads.Wait()

	timeout := cfg.Server.ShutdownTimeout.D()
	log.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		// A second SIGINT/SIGTERM during the drain: exit now. Pending
		// deliveries stay in the queue for the next start.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		fmt.Fprintln(stderr, "switchyard: second signal, exiting now")
		os.Exit(1)
	}()
	if err := a.Stop(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return &exitError{code: 1}
	}
	log.Info("stopped")
	return nil
}

// testOptions, set only by this package's tests (TestMain), adjusts the
// gateway a test runs as a separate process: fault injection.
var testOptions func(*app.Options)
