package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/queue"
)

// Heartbeat records r as serving now (the database's clock, which every
// replica shares). It returns queue.ErrReplicaName, having recorded r
// all the same, when another process used r's name within live.
func (s *Store) Heartbeat(ctx context.Context, r queue.Replica, live time.Duration) error {
	var other *string
	err := s.pool.QueryRow(ctx, `WITH prev AS (
			SELECT instance FROM queue_replicas WHERE name = $1 AND heartbeat_at > now() - make_interval(secs => $6)
		)
		INSERT INTO queue_replicas (name, instance, version, config_digest, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, version = excluded.version,
			config_digest = excluded.config_digest, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
		RETURNING (SELECT instance FROM prev)`,
		r.Name, r.Instance, r.Version, r.ConfigDigest, r.Started, live.Seconds()).Scan(&other)
	if err != nil {
		return fmt.Errorf("replica heartbeat: %w", err)
	}
	if other != nil && *other != r.Instance {
		return fmt.Errorf("replica %s: %w", r.Name, queue.ErrReplicaName)
	}
	return nil
}

// Replicas returns the replicas whose last heartbeat is within live,
// by name.
func (s *Store) Replicas(ctx context.Context, live time.Duration) ([]queue.Replica, error) {
	rows, _ := s.pool.Query(ctx, `SELECT name, instance, version, config_digest, started_at, heartbeat_at FROM queue_replicas
		WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY name`, live.Seconds())
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (queue.Replica, error) {
		var r queue.Replica
		err := row.Scan(&r.Name, &r.Instance, &r.Version, &r.ConfigDigest, &r.Started, &r.Heartbeat)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	return out, nil
}

// Leave removes r's record, when it is still r's: a replica stopping
// cleanly is no longer listed.
func (s *Store) Leave(ctx context.Context, r queue.Replica) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM queue_replicas WHERE name = $1 AND instance = $2`, r.Name, r.Instance); err != nil {
		return fmt.Errorf("replica leave: %w", err)
	}
	return nil
}
