// Package state is the one owner of every call the Go worker makes to the Dapr state API,
// with the rules of src/jobrelay/state.py, which the Python services follow on the same keys:
//
//   - A guarded write carries the ETag of the version it was computed from; Insert (no ETag,
//     first-write) succeeds only if the key is absent. Two writers racing on a key cannot
//     both win: the loser gets ErrConflict and decides again on a fresh read.
//   - Update is the one read-modify-write loop, with the one retry bound and backoff.
//   - A TTL goes with every write that must expire (never `ttlInSeconds: -1`).
//   - Strong consistency on every guarded write: a claim must see the latest version, or
//     two workers (in any language) could both claim.
package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"jobrelay/worker-go/internal/clock"
)

// Dapr is the part of the Dapr client the worker uses; dapr.Client has it, and the unit
// tests' fake (named as one) keeps Dapr's ETag rules.
type Dapr interface {
	GetState(ctx context.Context, store, key string, meta map[string]string) (*dapr.StateItem, error)
	GetBulkState(ctx context.Context, store string, keys []string, meta map[string]string, parallelism int32) ([]*dapr.BulkStateItem, error)
	SaveBulkState(ctx context.Context, store string, items ...*dapr.SetStateItem) error
	DeleteState(ctx context.Context, store, key string, meta map[string]string) error
	PublishEvent(ctx context.Context, pubsub, topic string, data interface{}, opts ...dapr.PublishEventOption) error
}

var (
	// ErrConflict: the key changed (or appeared, or went) since it was read.
	ErrConflict = errors.New("state: the key changed since it was read")
	// ErrKeyTaken: an insert found the key already there.
	ErrKeyTaken = fmt.Errorf("%w (insert found the key taken)", ErrConflict)
	// ErrContended: Update lost UpdateTries races in a row; the key is hammered.
	ErrContended = errors.New("state: too many lost races on one key")
)

const (
	// UpdateTries bounds a read-modify-write: each lost race means another writer went
	// through, so this many in a row means the caller should back off for good.
	UpdateTries = 8
	// insertTries: inserts refused with the key absent on the read that follows.
	insertTries      = 3
	backoffFirst     = 2 * time.Millisecond
	backoffMax       = 200 * time.Millisecond
	ttlMetadataField = "ttlInSeconds"
)

// Item is a stored value and the ETag of its version.
type Item struct {
	Data []byte
	ETag string
}

// Write is what an Update change decided to write, and its TTL (0: none).
type Write struct {
	Data       []byte
	TTLSeconds int
}

// State reads and writes one Dapr state store.
type State struct {
	dapr  Dapr
	store string
}

// New is a State on `store` through `d`.
func New(d Dapr, store string) *State { return &State{dapr: d, store: store} }

// IsConflict reports whether daprd refused a write for its ETag (gRPC ABORTED).
func IsConflict(err error) bool {
	return status.Code(errors.Unwrap(err)) == codes.Aborted || status.Code(err) == codes.Aborted
}

// Backoff is the wait before try attempt+1 of a contended write: doubling, jittered so
// racing writers spread out.
func Backoff(attempt int) time.Duration {
	ceiling := min(backoffFirst<<attempt, backoffMax)
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1))
}

func ttl(seconds int) map[string]string {
	if seconds <= 0 {
		return nil
	}
	return map[string]string{ttlMetadataField: strconv.Itoa(max(seconds, 1))}
}

var guarded = &dapr.StateOptions{
	Concurrency: dapr.StateConcurrencyFirstWrite,
	Consistency: dapr.StateConsistencyStrong,
}

// Get is the key's value, or nil when absent.
func (s *State) Get(ctx context.Context, key string) (*Item, error) {
	got, err := s.dapr.GetState(ctx, s.store, key, nil)
	if err != nil {
		return nil, err
	}
	if got == nil || len(got.Value) == 0 {
		return nil, nil
	}
	return &Item{Data: got.Value, ETag: got.Etag}, nil
}

// GetMany reads keys in one call: an Item, or nil for an absent key. A key that failed to
// read is left out, so "absent" and "unknown" stay apart.
func (s *State) GetMany(ctx context.Context, keys []string) (map[string]*Item, error) {
	if len(keys) == 0 {
		return map[string]*Item{}, nil
	}
	items, err := s.dapr.GetBulkState(ctx, s.store, keys, nil, 4)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Item, len(items))
	for _, it := range items {
		if it.Error != "" {
			continue
		}
		if len(it.Value) == 0 {
			out[it.Key] = nil
		} else {
			out[it.Key] = &Item{Data: it.Value, ETag: it.Etag}
		}
	}
	return out, nil
}

// Put is an unguarded write, for keys only one writer ever writes.
func (s *State) Put(ctx context.Context, key string, data []byte, ttlSeconds int) error {
	return s.dapr.SaveBulkState(ctx, s.store, &dapr.SetStateItem{
		Key: key, Value: data, Metadata: ttl(ttlSeconds),
	})
}

// Insert writes key only if absent; ErrKeyTaken if it is there.
//
// Stores refuse a taken key differently (Redis answers a generic error, not ABORTED), so a
// refusal is confirmed by a read: there means taken. Absent is ambiguous (a real failure,
// or a key deleted since), so the insert is tried again, and a failure that outlasts the
// tries is returned.
func (s *State) Insert(ctx context.Context, key string, data []byte, ttlSeconds int) error {
	var err error
	for attempt := range insertTries {
		err = s.dapr.SaveBulkState(ctx, s.store, &dapr.SetStateItem{
			Key: key, Value: data, Metadata: ttl(ttlSeconds), Options: guarded,
		})
		if err == nil {
			return nil
		}
		if IsConflict(err) {
			return ErrKeyTaken
		}
		if found, readErr := s.Get(ctx, key); readErr == nil && found != nil {
			return ErrKeyTaken
		}
		if attempt < insertTries-1 {
			if sleepErr := clock.Sleep(ctx, Backoff(attempt)); sleepErr != nil {
				return sleepErr
			}
		}
	}
	return err
}

// Replace writes key if it is still at etag; ErrConflict if another write came first.
func (s *State) Replace(ctx context.Context, key string, data []byte, etag string, ttlSeconds int) error {
	err := s.dapr.SaveBulkState(ctx, s.store, &dapr.SetStateItem{
		Key: key, Value: data, Etag: &dapr.ETag{Value: etag}, Metadata: ttl(ttlSeconds), Options: guarded,
	})
	if err != nil && IsConflict(err) {
		return ErrConflict
	}
	return err
}

// Delete removes key, unguarded.
func (s *State) Delete(ctx context.Context, key string) error {
	return s.dapr.DeleteState(ctx, s.store, key, nil)
}

// Change gets the current value (nil if absent) and answers what to write, or nil to
// leave it. It may run once per lost race, so it must act only through its answer; an
// error it returns stops Update and is returned as it is.
type Change func(current []byte) (*Write, error)

// Update applies change until a guarded write of its answer goes through. It returns the
// value as it now stands and whether this call wrote it; ErrContended after UpdateTries
// lost races.
func (s *State) Update(ctx context.Context, key string, change Change) ([]byte, bool, error) {
	for attempt := range UpdateTries {
		item, err := s.Get(ctx, key)
		if err != nil {
			return nil, false, err
		}
		var current []byte
		if item != nil {
			current = item.Data
		}
		write, err := change(current)
		if err != nil {
			return nil, false, err
		}
		if write == nil {
			return current, false, nil
		}
		if item == nil {
			err = s.Insert(ctx, key, write.Data, write.TTLSeconds)
		} else {
			err = s.Replace(ctx, key, write.Data, item.ETag, write.TTLSeconds)
		}
		if errors.Is(err, ErrConflict) {
			if sleepErr := clock.Sleep(ctx, Backoff(attempt)); sleepErr != nil {
				return nil, false, sleepErr
			}
			continue
		}
		if err != nil {
			return nil, false, err
		}
		return write.Data, true, nil
	}
	return nil, false, fmt.Errorf("%w: %s", ErrContended, key)
}
