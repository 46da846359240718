// SPDX-License-Identifier: MIT
//
// go_chanpingpong.go — two goroutines ping-pong over two unbuffered
// channels: the anchor of `bench_sync --mode chan`.
//
//	go run perf/go_chanpingpong.go [-iters N]
//
// The same steps as perf/bench_sync.c's chan mode: goroutine A sends i on
// ab and receives the echo on ba; goroutine B receives on ab, adds one and
// sends back on ba. GOMAXPROCS=1 (set here, as runtime.GOMAXPROCS(1)):
// one thread, as one taskring engine, so every rendezvous is a goroutine
// switch, never a wake-up of another thread. Timed from A's first send to
// its last receive; every echo must be i+1.
//
// Output, one JSON line on stdout:
//
//	{"bench":"sync","impl":"go","params":{"mode":"chan","N":..},"value":<ns per round trip>,"unit":"ns/rt","go":"go1.19.."}
//
// Standard library only; perf/run.py builds it with `go build` into its
// temporary directory (GOCACHE there too: no network, no module download).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	iters := flag.Int64("iters", 2000000, "round trips (N)")
	flag.Parse()
	if *iters < 1 || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	runtime.GOMAXPROCS(1)
	n := *iters
	ab := make(chan int64)
	ba := make(chan int64)
	done := make(chan error)
	go func() {
		for i := int64(0); i < n; i++ {
			v := <-ab
			if v != i {
				done <- fmt.Errorf("B got %d, expected %d", v, i)
				return
			}
			ba <- v + 1
		}
		done <- nil
	}()
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ab <- i
		if back := <-ba; back != i+1 {
			fmt.Fprintf(os.Stderr, "error: A got %d, expected %d\n", back, i+1)
			os.Exit(1)
		}
	}
	el := time.Since(t0)
	if err := <-done; err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]interface{}{
		"bench":  "sync",
		"impl":   "go",
		"params": map[string]interface{}{"mode": "chan", "N": n},
		"value":  float64(el.Nanoseconds()) / float64(n),
		"unit":   "ns/rt",
		"go":     runtime.Version(),
	})
	fmt.Println(string(out))
}
