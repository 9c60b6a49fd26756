package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// validateStorage checks the storage section: the backend, and the
// settings of the one chosen. A setting of the other backend is a
// warning: it has no effect.
func (c *Config) validateStorage() {
	st := c.Storage
	postgresOnly := []string{"storage.dsn", "storage.lease_ttl", "storage.pool_size", "storage.statement_timeout", "storage.poll_interval"}
	sqliteOnly := []string{"storage.synchronous", "storage.busy_timeout"}
	switch st.Backend {
	case BackendSQLite:
		for _, k := range postgresOnly {
			if c.given(k) {
				c.add(c.Warning(k, "applies to storage.backend postgres only; this gateway uses sqlite"))
			}
		}
	case BackendPostgres:
		for _, k := range sqliteOnly {
			if c.given(k) {
				c.add(c.Warning(k, "applies to storage.backend sqlite only; this gateway uses postgres"))
			}
		}
		switch {
		case st.DSN == "" && !c.given("storage.dsn"):
			c.add(c.Problem("storage.dsn", "backend postgres needs a connection string: dsn: ${SWITCHYARD_POSTGRES_DSN} (postgres://user:pass@host:5432/db?sslmode=verify-full)"))
		case st.DSN == "":
			c.add(c.Problem("storage.dsn", "is empty (an unset ${VAR:-}?): give the database's connection string"))
		default:
			if msg := checkDSN(st.DSN.Reveal()); msg != "" {
				c.add(c.Problem("storage.dsn", "%s", msg))
			}
		}
		if st.LeaseTTL < Duration(time.Second) {
			c.add(c.Problem("storage.lease_ttl", "must be at least 1s; for example 30s"))
		}
		switch {
		case st.StatementTimeout < Duration(10*time.Millisecond):
			c.add(c.Problem("storage.statement_timeout", "must be at least 10ms; for example 5s"))
		case st.LeaseTTL >= Duration(time.Second) && st.StatementTimeout > st.LeaseTTL/3:
			c.add(c.Warning("storage.statement_timeout", "is longer than a third of storage.lease_ttl (%s): a lease renewal (every third of it) that takes this long may end after the lease", st.LeaseTTL))
		}
		if st.PoolSize < 2 || st.PoolSize > 1000 {
			c.add(c.Problem("storage.pool_size", "must be from 2 to 1000; for example 16"))
		}
		if st.PollInterval < Duration(10*time.Millisecond) || st.PollInterval > Duration(time.Minute) {
			c.add(c.Problem("storage.poll_interval", "must be from 10ms to 1m; for example 1s"))
		}
	default:
		c.add(c.Problem("storage.backend", "unknown backend %q: sqlite (the default: one gateway, storage.dir) or postgres (several replicas, storage.dsn)", st.Backend))
	}
	if name := c.Server.ReplicaName; name != "" && !replicaRE.MatchString(name) {
		c.add(c.Problem("server.replica_name", "invalid name %q: use up to 128 letters, digits, '.', '_', ':' and '-'", name))
	}
}

var replicaRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// checkDSN returns what is wrong with a PostgreSQL connection string's
// form, or "". The string itself is never repeated: it may hold a
// password. Whether the server answers is not checked: check runs
// without connecting.
func checkDSN(dsn string) string {
	const want = "want postgres://user:pass@host:5432/db?sslmode=verify-full, or host=... dbname=... key=value pairs"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url's error repeats the string: say only that it is broken.
			return "not a valid URL (a character in the password to percent-encode?); " + want
		}
		if strings.Trim(u.Path, "/") == "" && u.Query().Get("dbname") == "" {
			return "names no database: add /dbname after the host"
		}
		return ""
	}
	if strings.Contains(dsn, "://") {
		return "unknown scheme; " + want
	}
	fields := strings.Fields(dsn)
	if len(fields) == 0 {
		return want
	}
	for _, f := range fields {
		if k, _, ok := strings.Cut(f, "="); !ok || k == "" {
			return "not a URL nor key=value pairs; " + want
		}
	}
	return ""
}

// ReplicaNameFor is the name this gateway goes by among replicas: the
// configured one, else host and the port of listen (the address
// actually served), so that replicas on one host differ.
func (s Server) ReplicaNameFor(host, listen string) string {
	if s.ReplicaName != "" {
		return s.ReplicaName
	}
	port := listen
	if i := strings.LastIndexByte(listen, ':'); i >= 0 {
		port = listen[i+1:]
	}
	if host == "" {
		host = "localhost"
	}
	return host + ":" + port
}
