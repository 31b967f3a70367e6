// Package daprfake is a fake of the Dapr client's state and publish calls for the Go
// worker's unit tests, named as one: it keeps Dapr's rules that the protocol depends on (an
// ETag mismatch is ABORTED, a first-write insert on a taken key is refused as Redis refuses
// it, with a generic error) and records every value written and every event published.
// Nothing called an integration test uses it: those run the real daprd.
package daprfake

import (
	"context"
	"errors"
	"strconv"
	"sync"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type entry struct {
	data    []byte
	version int
}

// Published is one event the code published.
type Published struct {
	PubSub, Topic string
	Data          []byte
}

// Written is one value the code saved, with its TTL metadata.
type Written struct {
	Key  string
	Data []byte
	TTL  string
}

// Dapr is the fake.
type Dapr struct {
	mu        sync.Mutex
	keys      map[string]*entry
	next      int
	Writes    []Written
	Events    []Published
	FailSaves int // the next this many saves fail as an unreachable store would
}

// New is an empty store.
func New() *Dapr { return &Dapr{keys: map[string]*entry{}} }

func (d *Dapr) GetState(_ context.Context, _, key string, _ map[string]string) (*dapr.StateItem, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.keys[key]
	if !ok {
		return &dapr.StateItem{Key: key}, nil
	}
	return &dapr.StateItem{Key: key, Value: append([]byte(nil), e.data...), Etag: strconv.Itoa(e.version)}, nil
}

func (d *Dapr) GetBulkState(ctx context.Context, store string, keys []string, meta map[string]string, _ int32) ([]*dapr.BulkStateItem, error) {
	out := make([]*dapr.BulkStateItem, 0, len(keys))
	size := 0
	for _, k := range keys {
		item, _ := d.GetState(ctx, store, k, meta)
		out = append(out, &dapr.BulkStateItem{Key: k, Value: item.Value, Etag: item.Etag})
		size += len(k) + len(item.Value)
	}
	if size > MaxMessageBytes {
		// As the real client refuses daprd's answer: gRPC's default receive limit.
		return nil, status.Errorf(codes.ResourceExhausted,
			"grpc: received message larger than max (%d vs. %d)", size, MaxMessageBytes)
	}
	return out, nil
}

// MaxMessageBytes is the largest gRPC message daprd and its clients take by default (4 MiB).
const MaxMessageBytes = 4 * 1024 * 1024

func (d *Dapr) SaveBulkState(_ context.Context, _ string, items ...*dapr.SetStateItem) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.FailSaves > 0 {
		d.FailSaves--
		return status.Error(codes.Unavailable, "the fake store is down")
	}
	for _, it := range items {
		e, exists := d.keys[it.Key]
		firstWrite := it.Options != nil && it.Options.Concurrency == dapr.StateConcurrencyFirstWrite
		switch {
		case it.Etag != nil && (!exists || strconv.Itoa(e.version) != it.Etag.Value):
			return status.Error(codes.Aborted, "possible etag mismatch")
		case it.Etag == nil && firstWrite && exists:
			return errors.New("failed saving state: key already exists") // as Redis answers
		}
		d.next++
		d.keys[it.Key] = &entry{data: append([]byte(nil), it.Value...), version: d.next}
		d.Writes = append(d.Writes, Written{Key: it.Key, Data: it.Value, TTL: it.Metadata["ttlInSeconds"]})
	}
	return nil
}

func (d *Dapr) DeleteState(_ context.Context, _, key string, _ map[string]string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.keys, key)
	return nil
}

func (d *Dapr) PublishEvent(_ context.Context, pubsub, topic string, data interface{}, _ ...dapr.PublishEventOption) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Events = append(d.Events, Published{PubSub: pubsub, Topic: topic, Data: data.([]byte)})
	return nil
}

// Put stores a value as another app would.
func (d *Dapr) Put(key string, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	d.keys[key] = &entry{data: data, version: d.next}
}

// Value is what key holds now, nil if absent.
func (d *Dapr) Value(key string) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.keys[key]; ok {
		return e.data
	}
	return nil
}

// Snapshot copies what was written and published so far.
func (d *Dapr) Snapshot() ([]Written, []Published) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Written(nil), d.Writes...), append([]Published(nil), d.Events...)
}
