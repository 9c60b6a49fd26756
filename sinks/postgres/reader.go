package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/sinks/archive"
)

// Reader reads an archive without writing to it, while gateways write:
// each search or export reads one snapshot (a read-only, repeatable
// read transaction), which never blocks the writers.
type Reader struct {
	pool     *pgxpool.Pool
	cfg      *pgxpool.Config
	describe string
}

var _ archive.Reader = (*Reader)(nil)

// OpenReader connects to the archive at dsn, read-only. The archive
// must exist and have this switchyard's schema.
func OpenReader(ctx context.Context, dsn string) (*Reader, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	r := &Reader{cfg: cfg, describe: Describe(cfg.ConnConfig)}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err == nil {
		err = pool.Ping(cctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the postgres archive at %s: %w", r.describe, redact(err, cfg))
	}
	r.pool = pool
	var version int
	err = pool.QueryRow(cctx, `SELECT coalesce(max(version), 0) FROM archive_schema`).Scan(&version)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42P01" {
		pool.Close()
		return nil, fmt.Errorf("no switchyard archive at %s: start the gateway with the postgres sink once to create it (or check the dsn's database and search_path)", r.describe)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres archive %s: %w", r.describe, redact(err, cfg))
	}
	if version != len(migrations) {
		pool.Close()
		return nil, fmt.Errorf("the archive at %s has schema version %d, this switchyard reads %d: run the gateway once to migrate it, or use a matching switchyard", r.describe, version, len(migrations))
	}
	return r, nil
}

// Close closes the reader.
func (r *Reader) Close() error {
	r.pool.Close()
	return nil
}

// snapshot runs fn in a read-only transaction seeing one snapshot.
func (r *Reader) snapshot(ctx context.Context, fn func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	return redact(err, r.cfg)
}

// Search finds sessions whose title or summary match query, in the
// archive's search language (archive.ParseQuery): words (accents, case
// and punctuation do not matter), "a phrase", prefix*, OR, AND, NOT,
// parentheses, title:word, summary:word. Newest sessions first.
func (r *Reader) Search(ctx context.Context, query string, limit int) ([]archive.Hit, error) {
	if limit <= 0 {
		limit = 20
	}
	q, err := archive.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	var hits []archive.Hit
	err = r.snapshot(ctx, func(tx pgx.Tx) error {
		// Terms are folded by the archive's own function, as its index.
		rows, err := tx.Query(ctx, `SELECT switchyard_fold(t) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n`, q.Terms())
		if err != nil {
			return err
		}
		folded, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		tsq, err := q.TSQuery(folded)
		if err != nil {
			return &archive.QueryError{Query: query, Msg: err.Error()}
		}
		rows, err = tx.Query(ctx, `SELECT session_id, coalesce(channel_name, ''), coalesce(title, ''), coalesce(forward_type, ''),
				last_event_at, coalesce(summary, '')
			FROM sessions WHERE search @@ to_tsquery('simple', $1)
			ORDER BY last_event_at DESC, id DESC LIMIT $2`, tsq, limit)
		if err != nil {
			return err
		}
		prefixes := q.Prefixes()
		var h archive.Hit
		var last time.Time
		var summary string
		_, err = pgx.ForEachRow(rows, []any{&h.SessionID, &h.Channel, &h.Title, &h.ForwardType, &last, &summary}, func() error {
			h.LastEventAt = last.UTC().Format(archive.TimeFormat)
			h.Snippet = archive.Snippet([]string{h.Title, summary}, folded, prefixes)
			hits = append(hits, h)
			return nil
		})
		return err
	})
	if err != nil {
		if _, ok := errors.AsType[*archive.QueryError](err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	return hits, nil
}

// internal are sessions columns exports leave out.
var internal = map[string]bool{"id": true, "_versions": true, "search": true}

// Columns returns the columns Export writes for table, in table order.
func (r *Reader) Columns(ctx context.Context, table string) ([]string, error) {
	cols, _, err := r.columns(ctx, r.pool, table)
	return cols, err
}

func (r *Reader) columns(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, table string) (names, types []string, err error) {
	if err := archive.CheckTable(table); err != nil {
		return nil, nil, err
	}
	rows, err := q.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return nil, nil, err
	}
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		if table == "sessions" && internal[name] {
			return nil
		}
		names = append(names, name)
		types = append(types, typ)
		return nil
	})
	return names, types, err
}

// Export streams a table to w as archive.RowWriter does, from one
// snapshot, and returns how many rows it wrote. Values are those of the
// sqlite archive's export: times in archive.TimeFormat, booleans 1 and
// 0, JSON columns as JSON.
func (r *Reader) Export(ctx context.Context, w io.Writer, o archive.ExportOptions) (int, error) {
	if o.Table == "" {
		o.Table = "sessions"
	}
	n := 0
	err := r.snapshot(ctx, func(tx pgx.Tx) error {
		cols, types, err := r.columns(ctx, tx, o.Table)
		if err != nil {
			return err
		}
		if o.Where != nil {
			if err := o.Where.Check(cols); err != nil {
				return err
			}
		}
		rw, err := archive.NewRowWriter(w, o.Format, cols)
		if err != nil {
			return err
		}
		sel := make([]string, len(cols))
		for i, c := range cols {
			sel[i] = archive.Quote(c)
			if types[i] == "jsonb" || types[i] == "json" {
				sel[i] += "::text"
			}
		}
		q := "SELECT " + strings.Join(sel, ", ") + " FROM " + o.Table
		var args []any
		if !o.Since.IsZero() {
			at := "timestamp"
			if o.Table == "sessions" {
				at = "last_event_at"
			}
			q += " WHERE " + at + " >= $1"
			args = append(args, o.Since)
		}
		if o.Table == "sessions" {
			q += " ORDER BY id"
		} else {
			q += " ORDER BY timestamp, id"
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return err
			}
			for i, v := range vals {
				vals[i] = exportValue(cols[i], types[i], v)
			}
			if o.Where != nil && !o.Where.Match(vals) {
				continue
			}
			if err := rw.Write(vals); err != nil {
				return err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return rw.Flush()
	})
	if err != nil {
		return n, fmt.Errorf("export %s: %w", o.Table, err)
	}
	return n, nil
}

// exportValue converts a value read from PostgreSQL to what the sqlite
// archive exports for it. data and smart_fields are JSON; a configured
// column's list or map is JSON text, compact, as written.
func exportValue(col, typ string, v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(archive.TimeFormat)
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	case string:
		switch {
		case typ != "jsonb" && typ != "json":
		case archive.JSONColumns[col]:
			return json.RawMessage(x)
		default:
			var j any
			if err := json.Unmarshal([]byte(x), &j); err == nil {
				if b, err := json.Marshal(j); err == nil {
					return string(b)
				}
			}
		}
	}
	return v
}
