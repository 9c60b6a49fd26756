package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procStat is what treeCPU reads from one /proc/<pid>/stat.
type procStat struct {
	ppid int
	// own is the process's user + system time; reaped is its waited-for
	// children's (cutime + cstime): what the children that have exited
	// used.
	own, reaped time.Duration
}

// parseStat reads /proc/<pid>/stat's parent and CPU times. The command
// name, field 2, may hold spaces and parentheses: fields count from the
// last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("no ')' in /proc stat")
	}
	// state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime …
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, errors.New("short /proc stat")
	}
	var n [5]int64
	for k, idx := range []int{1, 11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("/proc stat field %d: %w", idx+3, err)
		}
		n[k] = v
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / clockTicks }
	return procStat{ppid: int(n[0]), own: tick(n[1] + n[2]), reaped: tick(n[3] + n[4])}, nil
}

// treeCPU is the CPU time (user + system) used so far by process pid
// and every process descending from it, those that have exited included,
// read from proc (a /proc file system): for each process of the tree
// still alive, its own time and its reaped children's. A child that
// exited and was waited for counts in its parent's reaped time, so a
// server that forks a process per connection (PostgreSQL) is counted
// whole however its processes come and go.
func treeCPU(proc string, pid int) (time.Duration, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, err
	}
	stats := map[int]procStat{}
	kids := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile: its parent's reaped time has it
		}
		st, err := parseStat(b)
		if err != nil {
			return 0, fmt.Errorf("%s/%d/stat: %w", proc, p, err)
		}
		stats[p] = st
		kids[st.ppid] = append(kids[st.ppid], p)
	}
	if _, ok := stats[pid]; !ok {
		return 0, fmt.Errorf("process %d: not in %s", pid, proc)
	}
	var total time.Duration
	seen := map[int]bool{}
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		total += stats[p].own + stats[p].reaped
		todo = append(todo, kids[p]...)
	}
	return total, nil
}
