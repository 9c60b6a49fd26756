// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb
// in a temporary directory, a free port on 127.0.0.1, fsync on. Run as
// root (CI), the cluster runs as the postgres user, since PostgreSQL
// refuses to run as root.
//
// Outside CI, a test that needs PostgreSQL skips with one line saying
// how to run it when the server is not installed; with CI=true a
// missing server fails the test.
//
// A package whose tests use Shared calls Main from its TestMain, so that
// the shared cluster stops when the tests end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	dir  string // data directory (and socket directory)
	port int
	bin  string
	cred *syscall.Credential
	cmd  *exec.Cmd
	mu   sync.Mutex
	dbs  atomic.Int64
	log  string
	// settings are added to the server's command line (-c name=value).
	settings []string
}

// ErrNotInstalled is why a test skips outside CI.
var ErrNotInstalled = errors.New("PostgreSQL is not installed (apt-get install -y postgresql); CI=true makes this a failure")

// Bin returns the directory of PostgreSQL's server programs, or
// ErrNotInstalled.
func Bin() (string, error) {
	if dir := os.Getenv("SWITCHYARD_PG_BIN"); dir != "" {
		return dir, nil
	}
	if path, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(path, "--bindir").Output(); err == nil {
			dir := strings.TrimSpace(string(out))
			if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
				return dir, nil
			}
		}
	}
	// Debian installs the server under /usr/lib/postgresql/<version>/bin.
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(matches)
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1]), nil
	}
	return "", ErrNotInstalled
}

// Require skips t (or fails it, with CI=true) when PostgreSQL is not
// installed.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v", err)
		}
		t.Skip("skipped: " + err.Error())
	}
	return bin
}

// Start starts a cluster of the test's own, stopped when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := Require(t)
	c, err := start(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Remove)
	return c
}

// New starts a cluster outside a test (a command that needs a
// throwaway PostgreSQL: the console's screenshots, the load benchmark),
// as Start does, with settings ("name=value") added to the server's
// command line; Remove stops it and deletes its files.
// ErrNotInstalled when PostgreSQL is not installed.
func New(settings ...string) (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	return start(bin, settings...)
}

func start(bin string, settings ...string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "switchyard-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin, settings: settings}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres
		// user, which Debian's package creates.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, PostgreSQL needs a user to run as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	out, err := c.command("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

// Start starts the server (again, after Stop or Kill), on the same port
// if it had one.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("pgtest: cluster already running")
	}
	if c.port == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
	}
	c.log = filepath.Join(c.dir, "postgres.log")
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(c.port),
		"-h", "127.0.0.1", "-k", c.dir,
		"-c", "fsync=on", "-c", "max_connections=300", "-c", "shared_buffers=64MB"}
	for _, s := range c.settings {
		args = append(args, "-c", s)
	}
	cmd := c.command("postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the test binary, however it ends.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), c.dsn("postgres"))
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(c.log)
			return fmt.Errorf("postgres did not start: %w\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server cleanly (a fast shutdown), killing it if it
// takes longer than 10 seconds.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	c.cmd = nil
}

// Kill kills the server and its backends at once, as a crash would.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	// Each backend is a process group of its own (PostgreSQL calls
	// setsid), so the postmaster's group does not reach them: they are
	// killed one by one, and waited for, since a new server refuses the
	// data directory while one is alive ("pre-existing shared memory
	// block is still in use").
	pid := c.cmd.Process.Pid
	kids := children(pid)
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
	c.cmd.Wait()
	c.cmd = nil
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		alive := false
		for _, k := range kids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", k)); err == nil {
				alive = true
			}
		}
		if !alive {
			return
		}
	}
}

// Pause stops the server and its backends (SIGSTOP): connections stay
// open and nothing answers, as with a host that froze or a network that
// drops packets. Resume continues them.
func (c *Cluster) Pause() { c.signalAll(syscall.SIGSTOP) }

// Resume continues a paused server.
func (c *Cluster) Resume() { c.signalAll(syscall.SIGCONT) }

func (c *Cluster) signalAll(sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	pid := c.cmd.Process.Pid
	syscall.Kill(pid, sig)
	for _, k := range children(pid) {
		syscall.Kill(k, sig)
	}
}

// children returns the processes whose parent is pid (Linux: /proc).
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		k, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, k)
		}
	}
	return out
}

// Remove stops the server and deletes its files.
func (c *Cluster) Remove() {
	c.Stop()
	os.RemoveAll(c.dir)
}

// Port is the server's port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// PID is the server's (the postmaster's) process id; 0 when stopped.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Dir is the directory of the cluster's files: its data directory
// (data), its socket and its log (postgres.log).
func (c *Cluster) Dir() string { return c.dir }

// ConnString is the connection string of database db on the cluster,
// as its superuser postgres; db need not exist yet ("postgres" does).
func (c *Cluster) ConnString(db string) string { return c.dsn(db) }

func (c *Cluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// DSN creates a fresh database and returns its connection string.
func (c *Cluster) DSN(t testing.TB) string {
	t.Helper()
	dsn, err := c.NewDatabase()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// NewDatabase creates a fresh database and returns its connection
// string.
func (c *Cluster) NewDatabase() (string, error) {
	name := fmt.Sprintf("test_%d", c.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return c.dsn(name), nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var shared struct {
	sync.Mutex
	c   *Cluster
	err error
}

// Shared returns the package's shared cluster, started on first use;
// the package's TestMain must call Main to stop it.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	bin := Require(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = start(bin)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

// Main runs the tests, then the functions after (the package's own
// cleanup: a TestMain calls os.Exit through Main), and removes the
// shared cluster.
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	shared.Lock()
	if shared.c != nil {
		shared.c.Remove()
	}
	shared.Unlock()
	os.Exit(code)
}
