package postgres

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/pgtest"
)

// tick is the kernel's clock tick, in which /proc reports CPU time.
const tick = 10 * time.Millisecond

// serverPID finds the postmaster of c: the process whose command line
// has "-p <port>".
func serverPID(c *pgtest.Cluster) int {
	want := "-p\x00" + strconv.Itoa(c.Port()) + "\x00"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && strings.Contains(string(b), want) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

// serverCPU is the CPU time used so far by the server pid and its live
// children (backends, writers: each leads a process group of its own).
func serverCPU(pid int) time.Duration {
	var total time.Duration
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// After the command: state ppid pgrp session tty tpgid flags minflt
		// cminflt majflt cmajflt utime stime.
		if len(f) < 13 || (f[1] != strconv.Itoa(pid) && filepath.Base(d) != strconv.Itoa(pid)) {
			continue
		}
		u, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		total += time.Duration(u+st) * tick
	}
	return total
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports the CPU per operation of a benchmark: the test's own
// and the server's.
func cpuMeter(b *testing.B, c *pgtest.Cluster) func() {
	pid := serverPID(c)
	self, server := selfCPU(), serverCPU(pid)
	return func() {
		n := float64(b.N)
		b.ReportMetric(float64((selfCPU()-self).Microseconds())/n, "client-µs/op")
		if pid != 0 {
			b.ReportMetric(float64((serverCPU(pid)-server).Microseconds())/n, "server-µs/op")
		}
	}
}
