package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/darwin"
)

const hookPath = "/hooks/darwin"

// runChild is the server side of a target, run in a child process so
// that its CPU time and peak RSS are its own:
//
//   - bare: a Fiber handler answering 200 (target a);
//   - verify: a Fiber handler that copies the body, verifies the
//     signature and parses the event, as the gateway does before storing
//     it (target b, the ceiling);
//   - gateway: the gateway as `switchyard serve` wires it (config.Load,
//     app.New, Start), used for target c only when profiling, since serve
//     has no profiling flag.
//
// It serves until SIGTERM or SIGINT.
func runChild(mode, addr, secret, configPath, cpuprofile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if mode == "gateway" {
		return serveGateway(ctx, configPath)
	}

	srv := fiber.New(fiber.Config{
		BodyLimit:             1 << 20,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		DisableStartupMessage: true,
	})
	srv.Get("/healthz", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	switch mode {
	case "bare":
		srv.Post(hookPath, func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	case "verify":
		secrets := [][]byte{[]byte(secret)}
		srv.Post(hookPath, func(c *fiber.Ctx) error {
			body := bytes.Clone(c.BodyRaw()) // Fiber reuses its buffer
			if err := darwin.Verify(secrets, c.Get(darwin.SignatureHeader), body); err != nil {
				return c.SendStatus(fiber.StatusUnauthorized)
			}
			ev, err := darwin.Normalize(body, time.Now().UTC())
			if err != nil {
				return c.SendStatus(fiber.StatusBadRequest)
			}
			return c.JSON(fiber.Map{"id": event.NewID("evt_", ev.ReceivedAt)})
		})
	default:
		return fmt.Errorf("unknown -child %q: want bare, verify or gateway", mode)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Listen(addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return srv.ShutdownWithTimeout(10 * time.Second)
	}
}

// serveGateway is what `switchyard serve` does, minus its flags and its
// second-signal handling.
func serveGateway(ctx context.Context, configPath string) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := app.New(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		return errors.Join(err, a.Stop(context.Background()))
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	return a.Stop(sctx)
}
