package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
)

// replicaStore is the part of a store shared by replicas (PostgreSQL)
// that records who serves from it.
type replicaStore interface {
	Heartbeat(ctx context.Context, r queue.Replica, live time.Duration) error
	Replicas(ctx context.Context, live time.Duration) ([]queue.Replica, error)
	Leave(ctx context.Context, r queue.Replica) error
}

// Heartbeats: a replica records one every HeartbeatEvery, and is listed
// while its last is younger than ReplicaLive.
const (
	HeartbeatEvery = 5 * time.Second
	ReplicaLive    = 3 * HeartbeatEvery
)

// newReplica describes this gateway: its name (server.replica_name, or
// the host name and the port served), version and start.
func (a *App) newReplica(cfg *config.Config) queue.Replica {
	host, _ := os.Hostname()
	var b [8]byte
	rand.Read(b[:])
	a.setDigest(cfg.File())
	return queue.Replica{
		Name:     cfg.Server.ReplicaNameFor(host, cfg.Server.Listen),
		Instance: hex.EncodeToString(b[:]),
		Version:  Version,
		Started:  a.now().UTC().Truncate(time.Millisecond),
	}
}

// setDigest records the SHA-256 of the configuration file as loaded.
func (a *App) setDigest(file string) {
	digest := ""
	if sum := hashFile(file); sum != nil {
		digest = hex.EncodeToString(sum[:])
	}
	a.digest.Store(&digest)
}

// self is this replica as it would record itself now.
func (a *App) self() queue.Replica {
	r := a.replica
	r.ConfigDigest = *a.digest.Load()
	return r
}

// wake is told by the store that another replica (or the CLI) queued
// work for sink; "" wakes every sink.
func (a *App) wake(sink string) {
	r := a.routing.Load()
	if r == nil {
		return
	}
	for name, rs := range r.sinks {
		if sink == "" || sink == name {
			rs.disp.Notify(name)
		}
	}
}

// heartbeatLoop records this replica every HeartbeatEvery and warns when
// the live replicas' configurations differ (each difference once, until
// it changes), or another live process uses this replica's name.
func (a *App) heartbeatLoop(rs replicaStore) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	var differ, lastErr string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), HeartbeatEvery)
		me := a.self()
		err := rs.Heartbeat(ctx, me, ReplicaLive)
		var live []queue.Replica
		if err == nil || errors.Is(err, queue.ErrReplicaName) {
			var lerr error
			live, lerr = rs.Replicas(ctx, ReplicaLive)
			if err == nil {
				err = lerr
			}
		}
		cancel()
		switch {
		case err != nil && err.Error() != lastErr:
			a.log.Warn("replica heartbeat", "replica", me.Name, "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			a.log.Info("replica heartbeat recorded again", "replica", me.Name)
			lastErr = ""
		}
		if live != nil {
			var others []string
			for _, r := range live {
				if r.Instance != me.Instance && r.ConfigDigest != me.ConfigDigest {
					others = append(others, r.Name)
				}
			}
			slices.Sort(others)
			if now := strings.Join(others, ","); now != differ {
				if now != "" {
					a.log.Warn("this replica's configuration differs from other replicas': each must load the same file",
						"replica", me.Name, "config_digest", short(me.ConfigDigest), "differs_from", others)
				} else if differ != "" {
					a.log.Info("this replica's configuration matches the other replicas' again", "replica", me.Name)
				}
				differ = now
			}
		}
		select {
		case <-a.quit:
			return
		case <-t.C:
		}
	}
}

func short(digest string) string { return digest[:min(len(digest), 12)] }

// Replicas lists the live replicas sharing this gateway's store; with
// SQLite, the gateway alone.
func (a *App) Replicas(ctx context.Context) ([]queue.Replica, error) {
	if rs, ok := a.store.(replicaStore); ok {
		return rs.Replicas(ctx, ReplicaLive)
	}
	me := a.self()
	me.Heartbeat = a.now()
	return []queue.Replica{me}, nil
}

// leave removes this replica's record as it stops.
func (a *App) leave() {
	rs, ok := a.store.(replicaStore)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rs.Leave(ctx, a.self()); err != nil {
		a.log.Warn("replica leave", "err", err)
	}
}
