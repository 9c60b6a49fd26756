package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// stat is a /proc/<pid>/stat line with the given parent and times (in
// clock ticks).
func stat(pid int, comm string, ppid, utime, stime, cutime, cstime int) string {
	return fmt.Sprintf("%d (%s) S %d 1 1 0 -1 4194560 100 0 0 0 %d %d %d %d 20 0 1 0 100 1000 10\n",
		pid, comm, ppid, utime, stime, cutime, cstime)
}

// TestTreeCPU sums a PostgreSQL-like tree in a made-up /proc: the
// postmaster (its exited backends in its reaped time), its backends,
// a grandchild, and processes outside the tree that must not count.
func TestTreeCPU(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	write := func(pid int, line string) {
		dir := filepath.Join(proc, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1, stat(1, "init", 0, 5, 5, 1000, 1000))
	write(100, stat(100, "postgres", 1, 10, 20, 300, 400))            // postmaster: 30 own, 700 reaped
	write(101, stat(101, "postgres: checkpointer ", 100, 1, 2, 0, 0)) // 3
	write(102, stat(102, "postgres: postgres bench_1 127.0.0.1(5) idle", 100, 50, 25, 0, 0))
	write(103, stat(103, "a) b (c", 102, 4, 6, 7, 3)) // a grandchild with ')' in its name: 20
	write(200, stat(200, "switchyard", 1, 900, 900, 0, 0))
	write(201, stat(201, "postgres", 200, 900, 900, 0, 0)) // another tree's
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(proc, "104"), 0o755); err != nil { // exited while read: no stat
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		pid  int
		want int // ticks
	}{
		{"the whole tree", 100, 30 + 700 + 3 + 75 + 20},
		{"a subtree", 102, 75 + 20},
		{"a leaf", 101, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := treeCPU(proc, tc.pid)
			if err != nil {
				t.Fatal(err)
			}
			if want := time.Duration(tc.want) * 10 * time.Millisecond; got != want {
				t.Errorf("treeCPU(%d) = %v, want %v", tc.pid, got, want)
			}
		})
	}
	if _, err := treeCPU(proc, 999); err == nil {
		t.Error("treeCPU of a process that is not there: no error")
	}
	write(105, "105 (broken) S 1")
	if _, err := treeCPU(proc, 100); err == nil {
		t.Error("a short stat line: no error")
	}
}

// TestTreeCPUReal reads the real /proc: a shell whose child burns CPU
// and exits counts that CPU in the shell's tree.
func TestTreeCPUReal(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("skipped: no /proc (Linux only)")
	}
	// The child counts to 300,000 (about 250 ms of CPU) and exits; the
	// shell then waits on a pipe until the test has read its tree.
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; echo done; read x`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	tree, err := treeCPU("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	own, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// The child's time is in the tree, not in the shell's own.
	if tree-own < 100*time.Millisecond {
		t.Errorf("tree %v, shell's own %v: the exited child's CPU is missing", tree, own)
	}
}
