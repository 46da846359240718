// SPDX-License-Identifier: MIT

// go_chanpingpong.go — Go's unbuffered channels, one goroutine each way: the
// anchor of `bench_sync --mode chan` (perf/bench_sync.c).
//
//	go_chanpingpong [-iters N] [-shape sym|asym] [-rounds R]
//
// Built by perf/run.py with the Go toolchain of Debian's golang-go (Go 1.19,
// standard library only: no module, no network) and run with GOMAXPROCS=1,
// which main also sets, so both goroutines share one thread as taskring's two
// tasks share one engine. Two goroutines, A and B, ping-pong a uint64 over
// two unbuffered channels (make(chan uint64)), each doing N iterations
// (default 2,000,000), exactly as bench_sync's two tasks do: shape sym (the
// default) runs one function for both sides (A opens with 0; each side
// receives 2i + 1 - x and sends one more), asym runs a producer and a
// consumer function (A sends 2i and receives 2i + 1; B the other way). Every
// received value is checked; a wrong one exits 1 with no JSON. The clock
// (time.Now, monotonic) starts when the first goroutine begins and stops when
// the last one ends. R rounds (default 3), each with fresh channels and
// goroutines; value = the median round, min and max beside it.
//
// Output, one JSON line on stdout:
//
//	{"bench":"sync","impl":"go","params":{"mode":"chan","N":2000000,"R":3,"shape":"sym"},
//	 "value":<ns per round trip>,"unit":"ns/rt","min":..,"max":..,"ns_per_handoff":..,
//	 "cpu_util":..,"go":"go1.19.8"}
//
// cpu_util: the process's CPU time (getrusage) / wall time over the rounds;
// about 1.0 when the machine left us alone (the runtime's own threads count
// too, so it can exceed 1 slightly).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"syscall"
	"time"
)

type pingpong struct {
	iters    int64
	ch       [2]chan uint64 // side x receives on ch[x], sends on ch[1-x]
	started  int32
	finished int32
	t0, t1   time.Time
	done     chan struct{}
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", a...)
	os.Exit(1)
}

func (r *pingpong) begin() {
	if atomic.AddInt32(&r.started, 1) == 1 {
		r.t0 = time.Now()
	}
}

func (r *pingpong) end() {
	if atomic.AddInt32(&r.finished, 1) == 2 {
		r.t1 = time.Now()
	}
	r.done <- struct{}{}
}

// sideSym: both goroutines run this one function.
func sideSym(r *pingpong, x int) {
	r.begin()
	if x == 0 {
		r.ch[1] <- 0
	}
	for i := int64(0); i < r.iters; i++ {
		want := 2*uint64(i) + uint64(1-x)
		v := <-r.ch[x]
		if v != want {
			fail("received %d, expected %d", v, want)
		}
		if x == 1 || i+1 < r.iters {
			r.ch[1-x] <- v + 1
		}
	}
	r.end()
}

func sideA(r *pingpong) {
	r.begin()
	for i := int64(0); i < r.iters; i++ {
		r.ch[1] <- 2 * uint64(i)
		if v := <-r.ch[0]; v != 2*uint64(i)+1 {
			fail("A received %d, expected %d", v, 2*uint64(i)+1)
		}
	}
	r.end()
}

func sideB(r *pingpong) {
	r.begin()
	for i := int64(0); i < r.iters; i++ {
		v := <-r.ch[1]
		if v != 2*uint64(i) {
			fail("B received %d, expected %d", v, 2*uint64(i))
		}
		r.ch[0] <- v + 1
	}
	r.end()
}

// round returns the wall ns of iters round trips.
func round(iters int64, asym bool) int64 {
	r := &pingpong{iters: iters, done: make(chan struct{}, 2)}
	r.ch[0], r.ch[1] = make(chan uint64), make(chan uint64)
	if asym {
		go sideB(r)
		go sideA(r)
	} else {
		go sideSym(r, 1)
		go sideSym(r, 0)
	}
	<-r.done
	<-r.done
	if r.finished != 2 {
		fail("%d of 2 goroutines finished", r.finished)
	}
	return r.t1.Sub(r.t0).Nanoseconds()
}

func cpuNs() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func main() {
	iters := flag.Int64("iters", 2000000, "round trips per round (N)")
	shape := flag.String("shape", "sym", "sym: one function for both sides; asym: two")
	rounds := flag.Int("rounds", 3, "rounds (R); the median is printed")
	flag.Parse()
	if *iters < 1 || *rounds < 1 || *rounds > 101 || (*shape != "sym" && *shape != "asym") ||
		flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	runtime.GOMAXPROCS(1)
	asym := *shape == "asym"

	ns := make([]int64, *rounds)
	var wall int64
	c0 := cpuNs()
	for k := range ns {
		ns[k] = round(*iters, asym)
		wall += ns[k]
	}
	cpu := cpuNs() - c0
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	n := len(ns)
	med := float64(ns[n/2])
	if n%2 == 0 {
		med = (float64(ns[n/2-1]) + float64(ns[n/2])) / 2
	}
	per := float64(*iters)
	fmt.Printf("{\"bench\":\"sync\",\"impl\":\"go\",\"params\":{\"mode\":\"chan\",\"N\":%d,"+
		"\"R\":%d,\"shape\":\"%s\"},\"value\":%.2f,\"unit\":\"ns/rt\",\"min\":%.2f,"+
		"\"max\":%.2f,\"ns_per_handoff\":%.2f,\"cpu_util\":%.3f,\"go\":\"%s\"}\n",
		*iters, *rounds, *shape, med/per, float64(ns[0])/per, float64(ns[n-1])/per,
		med/per/2, float64(cpu)/float64(wall), runtime.Version())
}
