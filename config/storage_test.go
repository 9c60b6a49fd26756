package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStorageSettings(t *testing.T) {
	t.Parallel()
	pg := "storage:\n  backend: postgres\n  dsn: ${PG_DSN}\n"
	dsn := map[string]string{"PG_DSN": "postgres://switchyard:hunter2@db.internal:5432/queue?sslmode=verify-full"}
	for _, c := range []struct {
		name, yaml string
		env        map[string]string
		want       string // a problem's text; "" for none
		warning    string
	}{
		{"sqlite by default", "", nil, "", ""},
		{"postgres", pg, dsn, "", ""},
		{"postgres settings", pg + "  lease_ttl: 10s\n  pool_size: 8\n  statement_timeout: 2s\n  poll_interval: 500ms\n", dsn, "", ""},
		{"key=value dsn", pg, map[string]string{"PG_DSN": "host=db.internal dbname=queue user=switchyard password=hunter2"}, "", ""},
		{"no dsn", "storage: {backend: postgres}\n", nil, "m.yaml:8:10: storage.dsn: backend postgres needs a connection string", ""},
		{"empty dsn", "storage:\n  backend: postgres\n  dsn: ${PG_DSN:-}\n", nil, "m.yaml:10:8: storage.dsn: is empty", ""},
		{"bad scheme", pg, map[string]string{"PG_DSN": "mysql://u:hunter2@h/db"}, "storage.dsn: unknown scheme", ""},
		{"bad url", pg, map[string]string{"PG_DSN": "postgres://u:hun%ter2@h/db"}, "storage.dsn: not a valid URL", ""},
		{"no database", pg, map[string]string{"PG_DSN": "postgres://u:hunter2@h:5432"}, "storage.dsn: names no database", ""},
		{"not a dsn", pg, map[string]string{"PG_DSN": "hunter2"}, "storage.dsn: not a URL nor key=value pairs", ""},
		{"unknown backend", "storage: {backend: mysql}\n", nil, `storage.backend: unknown backend "mysql"`, ""},
		{"short lease", pg + "  lease_ttl: 500ms\n", dsn, "m.yaml:11:14: storage.lease_ttl: must be at least 1s", ""},
		{"small pool", pg + "  pool_size: 1\n", dsn, "storage.pool_size: must be from 2 to 1000", ""},
		{"zero statement timeout", pg + "  statement_timeout: 0s\n", dsn, "storage.statement_timeout: must be at least 10ms", ""},
		{"slow poll", pg + "  poll_interval: 2m\n", dsn, "storage.poll_interval: must be from 10ms to 1m", ""},
		{"statement timeout near the lease", pg + "  lease_ttl: 3s\n  statement_timeout: 2s\n", dsn, "", "storage.statement_timeout: is longer than a third of storage.lease_ttl"},
		{"postgres key on sqlite", "storage: {lease_ttl: 10s}\n", nil, "", "storage.lease_ttl: applies to storage.backend postgres only"},
		{"sqlite key on postgres", pg + "  busy_timeout: 1s\n", dsn, "", "storage.busy_timeout: applies to storage.backend sqlite only"},
		{"replica name", "server: {replica_name: gw-1.eu:8080}\n", nil, "", ""},
		{"bad replica name", "server: {replica_name: \"gw 1\"}\n", nil, `server.replica_name: invalid name "gw 1"`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			yaml := strings.Replace(opsBase, "server: {listen: \":8080\"}\n", "", 1) + c.yaml
			cfg, err := Parse("m.yaml", []byte(yaml), env(c.env))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected problems:\n%v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want a problem containing %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("a problem shows the password: %v", err)
			}
			if c.warning != "" {
				found := false
				for _, w := range cfg.Warnings {
					found = found || strings.Contains(w.String(), c.warning)
				}
				if !found {
					t.Fatalf("warnings = %v, want one containing %q", cfg.Warnings, c.warning)
				}
			}
		})
	}
}

func TestStorageDefaultsAndDSNFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(file, []byte("postgres://switchyard:hunter2@db/queue\n"), 0o600)
	cfg, err := Parse("m.yaml", []byte(strings.Replace(opsBase, "server: {listen: \":8080\"}\n", "", 1)+
		"storage:\n  backend: postgres\n  dsn_file: "+file+"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	st := cfg.Storage
	if st.DSN.Reveal() != "postgres://switchyard:hunter2@db/queue" || st.LeaseTTL.D() != 30*time.Second || st.PoolSize != 16 ||
		st.StatementTimeout.D() != 5*time.Second || st.PollInterval.D() != time.Second {
		t.Fatalf("storage = %+v", st)
	}
	if got := cfg.Server.ReplicaNameFor("gw-a", "[::]:8081"); got != "gw-a:8081" {
		t.Fatalf("default replica name = %q", got)
	}
	cfg.Server.ReplicaName = "blue"
	if got := cfg.Server.ReplicaNameFor("gw-a", "[::]:8081"); got != "blue" {
		t.Fatalf("replica name = %q", got)
	}
}

func TestStorageSettingsNeedRestart(t *testing.T) {
	t.Parallel()
	base := strings.Replace(opsBase, "server: {listen: \":8080\"}\n", "", 1) + "storage:\n  backend: postgres\n  dsn: postgres://h/db\n"
	a, err := Parse("m.yaml", []byte(base), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("m.yaml", []byte(base+"  lease_ttl: 10s\n  pool_size: 4\n  statement_timeout: 1s\n  poll_interval: 2s\nserver: {replica_name: blue}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ch := Diff(a, b)
	for _, k := range []string{"storage.lease_ttl", "storage.pool_size", "storage.statement_timeout", "storage.poll_interval", "server.replica_name"} {
		if !strings.Contains(strings.Join(ch.NeedsRestart, " "), k) {
			t.Errorf("NeedsRestart = %v, want %s", ch.NeedsRestart, k)
		}
	}
	b.KeepRunning(a)
	if b.Storage != a.Storage || b.Server != a.Server {
		t.Fatalf("KeepRunning left %+v", b.Storage)
	}
}
