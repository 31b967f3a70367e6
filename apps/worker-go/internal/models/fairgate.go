package models

import (
	"container/heap"
	"context"
	"sync"

	"jobrelay/worker-go/internal/contract"
)

// FairGate is this worker's in-flight limit, served in the order the Python worker's
// apps/worker/fair_gate.py serves it: priority first (high, normal, low), then start-time
// fair queuing among tenants (each tenant's calls get start tags one apart, from the later of
// its last tag and the tag in service, so a tenant with nothing waiting goes next), then
// first come, first served within a tenant. Every tenant weighs the same here.
type FairGate struct {
	mu      sync.Mutex
	free    int
	waiting waiters // a heap: the next call first
	clocks  map[contract.Priority]*sfqClock
	seq     uint64
}

// Tenants' last tags are forgotten once they fall behind virtual time; checked from this many.
const pruneAt = 1024

type sfqClock struct {
	virtual float64            // the start tag of the call last let in
	finish  map[string]float64 // each tenant's last finish tag
}

type waiter struct {
	rank  int
	start float64
	seq   uint64
	prio  contract.Priority
	ready chan struct{} // closed when the call is this waiter's
	gone  bool          // gave up waiting (its context ended)
}

type waiters []*waiter

func (w waiters) Len() int { return len(w) }
func (w waiters) Less(i, j int) bool {
	if w[i].rank != w[j].rank {
		return w[i].rank < w[j].rank
	}
	if w[i].start != w[j].start {
		return w[i].start < w[j].start
	}
	return w[i].seq < w[j].seq
}
func (w waiters) Swap(i, j int) { w[i], w[j] = w[j], w[i] }
func (w *waiters) Push(x any)   { *w = append(*w, x.(*waiter)) }
func (w *waiters) Pop() any {
	old := *w
	last := old[len(old)-1]
	*w = old[:len(old)-1]
	return last
}

// NewFairGate lets `capacity` calls in at once.
func NewFairGate(capacity int) *FairGate {
	return &FairGate{free: capacity, clocks: map[contract.Priority]*sfqClock{}}
}

func rank(p contract.Priority) int {
	switch p {
	case contract.High:
		return 0
	case contract.Low:
		return 2
	default: // normal, or a record from before priorities
		return 1
	}
}

func (g *FairGate) clock(p contract.Priority) *sfqClock {
	if p != contract.High && p != contract.Low {
		p = contract.Normal
	}
	c, ok := g.clocks[p]
	if !ok {
		c = &sfqClock{finish: map[string]float64{}}
		g.clocks[p] = c
	}
	return c
}

// Acquire waits for a call of `tenant` at `prio`; Release gives it back. An error (the
// context's cause) means no call is held.
func (g *FairGate) Acquire(ctx context.Context, prio contract.Priority, tenant string) error {
	g.mu.Lock()
	c := g.clock(prio)
	start := max(c.virtual, c.finish[tenant])
	c.finish[tenant] = start + 1
	if g.free > 0 && len(g.waiting) == 0 {
		g.free--
		c.virtual = max(c.virtual, start)
		g.mu.Unlock()
		return nil
	}
	w := &waiter{rank: rank(prio), start: start, seq: g.seq, prio: prio, ready: make(chan struct{})}
	g.seq++
	heap.Push(&g.waiting, w)
	if g.free > 0 {
		g.free--
		g.handOver()
	}
	g.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-w.ready: // handed over just now: pass it on
			g.mu.Unlock()
			g.Release()
		default:
			w.gone = true
			g.mu.Unlock()
		}
		return context.Cause(ctx)
	}
}

// Release gives a call back, to the first in line if any waits.
func (g *FairGate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.free++
	if len(g.waiting) > 0 {
		g.free--
		g.handOver()
	}
}

// handOver gives a call just freed (not counted in free) to the first live waiter; g.mu held.
func (g *FairGate) handOver() {
	for len(g.waiting) > 0 {
		w := heap.Pop(&g.waiting).(*waiter)
		if w.gone {
			continue
		}
		c := g.clock(w.prio)
		c.virtual = max(c.virtual, w.start)
		if len(c.finish) >= pruneAt {
			for t, f := range c.finish {
				if f <= c.virtual {
					delete(c.finish, t)
				}
			}
		}
		close(w.ready)
		return
	}
	g.free++
}
