package models

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"jobrelay/worker-go/internal/contract"
)

// order queues `turns` in this order behind one held call, then releases it; the order in
// which they get their call.
func order(t *testing.T, g *FairGate, turns [][2]string) []string {
	t.Helper()
	if err := g.Acquire(context.Background(), contract.Normal, "holder"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var served []string
	var wg sync.WaitGroup
	for i, turn := range turns {
		wg.Add(1)
		go func(prio, name string) {
			defer wg.Done()
			if err := g.Acquire(context.Background(), contract.Priority(prio), name[:1]); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			served = append(served, name)
			mu.Unlock()
			g.Release()
		}(turn[0], turn[1])
		waitQueued(g, i+1) // queued in this order
	}
	g.Release()
	wg.Wait()
	return served
}

// waitQueued: until `n` calls have queued (the holder took the free call without queuing).
func waitQueued(g *FairGate, n int) {
	for range 1000 {
		g.mu.Lock()
		queued := int(g.seq)
		g.mu.Unlock()
		if queued >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestATenantBehindABacklogGoesNext(t *testing.T) {
	turns := [][2]string{}
	for _, n := range []string{"a0", "a1", "a2", "a3", "a4", "a5", "b6"} {
		turns = append(turns, [2]string{"normal", n})
	}
	served := order(t, NewFairGate(1), turns)
	// At most one of A's (the one whose start tag ties with B's) goes before B's.
	if served[0] != "b6" && served[1] != "b6" {
		t.Fatalf("b6 waited behind A's backlog: %v", served)
	}
}

func TestPriorityFirstThenFirstComeWithinATenant(t *testing.T) {
	turns := [][2]string{{"low", "a0"}, {"normal", "a1"}, {"normal", "a2"}, {"high", "a3"}, {"", "a4"}}
	served := order(t, NewFairGate(1), turns)
	want := []string{"a3", "a1", "a2", "a4", "a0"}
	if !reflect.DeepEqual(served, want) {
		t.Fatalf("served %v, want %v", served, want)
	}
}

func TestAWaiterThatGivesUpHoldsNoCall(t *testing.T) {
	g := NewFairGate(1)
	if err := g.Acquire(context.Background(), contract.Normal, "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	stopped := errors.New("stopped")
	cancel(stopped)
	if err := g.Acquire(ctx, contract.Normal, "b"); !errors.Is(err, stopped) {
		t.Fatalf("want the context's cause, got %v", err)
	}
	g.Release()
	// The one call is free again: the next Acquire does not wait.
	done := make(chan error, 1)
	go func() { done <- g.Acquire(context.Background(), contract.Normal, "c") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the call given up on was lost")
	}
}
