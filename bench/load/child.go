package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/groupcommit"
	"github.com/switchyard/switchyard/internal/sqlitedb"
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
//   - insert: verify and parse as verify does, then insert the raw body
//     into one SQLite table (rowid only, no index), the concurrent
//     requests' inserts sharing one transaction (group commit), and
//     answer once the commit is fsynced (synchronous=FULL): target d,
//     the floor for any durable ingest;
//   - gateway: the gateway as `switchyard serve` wires it (config.Load,
//     app.New, Start), used for target c only when profiling, since serve
//     has no profiling flag.
//
// It serves until SIGTERM or SIGINT.
func runChild(mode, addr, secret, configPath, cpuprofile, dir string) error {
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
	case "insert":
		ins, err := openInserter(dir)
		if err != nil {
			return err
		}
		defer ins.close()
		secrets := [][]byte{[]byte(secret)}
		srv.Post(hookPath, func(c *fiber.Ctx) error {
			body := bytes.Clone(c.BodyRaw())
			if err := darwin.Verify(secrets, c.Get(darwin.SignatureHeader), body); err != nil {
				return c.SendStatus(fiber.StatusUnauthorized)
			}
			ev, err := darwin.Normalize(body, time.Now().UTC())
			if err != nil {
				return c.SendStatus(fiber.StatusBadRequest)
			}
			id := event.NewID("evt_", ev.ReceivedAt)
			if err := ins.insert(id, body); err != nil {
				return c.SendStatus(fiber.StatusServiceUnavailable)
			}
			return c.JSON(fiber.Map{"id": id})
		})
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
		return fmt.Errorf("unknown -child %q: want bare, verify, insert or gateway", mode)
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
	if listen := os.Getenv("SWITCHYARD_LISTEN"); listen != "" { // as serve does
		cfg.Server.Listen = listen
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

// inserter is target d's store: one table, one writer, group commit.
type inserter struct {
	db   *sql.DB
	stmt *sql.Stmt
	ops  chan insertOp
	stop chan struct{}
	done chan struct{}
}

type insertOp struct {
	id   string
	body []byte
	done chan error
}

func openInserter(dir string) (*inserter, error) {
	db, err := sqlitedb.Open(context.Background(), filepath.Join(dir, "d.db"), sqlitedb.Options{Synchronous: "FULL"})
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS events (id TEXT NOT NULL, body BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, err
	}
	stmt, err := db.Prepare(`INSERT INTO events (id, body) VALUES (?, ?)`)
	if err != nil {
		db.Close()
		return nil, err
	}
	in := &inserter{db: db, stmt: stmt, ops: make(chan insertOp, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		groupcommit.Loop[insertOp]{Ops: in.ops, Stop: in.stop, Max: 256, Commit: in.commit}.Run()
	}()
	return in, nil
}

func (in *inserter) insert(id string, body []byte) error {
	op := insertOp{id: id, body: body, done: make(chan error, 1)}
	in.ops <- op
	return <-op.done
}

func (in *inserter) commit(batch []insertOp) {
	answer := func(err error) {
		for _, op := range batch {
			op.done <- err
		}
	}
	tx, err := in.db.Begin()
	if err != nil {
		answer(err)
		return
	}
	st := tx.Stmt(in.stmt)
	for _, op := range batch {
		if _, err := st.Exec(op.id, op.body); err != nil {
			tx.Rollback()
			answer(err)
			return
		}
	}
	answer(tx.Commit())
}

func (in *inserter) close() {
	close(in.stop)
	<-in.done
	in.stmt.Close()
	in.db.Close()
}
