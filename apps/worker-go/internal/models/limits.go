package models

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"jobrelay/worker-go/internal/clock"
	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/state"
)

// LimitWait: the limit did not free up before the job's deadline (`model_rate_limited`).
type LimitWait struct{ Reason string }

func (e *LimitWait) Error() string { return e.Reason }

const (
	// A slot outlives its call's timeout by this before its TTL frees it for others: a
	// worker that dies holding one does not shrink the pool for good.
	slotGrace      = 10 * time.Second
	firstLook      = 25 * time.Millisecond
	lastLook       = time.Second
	rateWindowTTL  = 120
	giveBackWithin = 5 * time.Second
)

// SharedLimits keeps the per-profile limits of config/models.yaml with the Python worker's
// protocol (apps/worker/limits.py), on the same keys, so workers in both languages share one
// pool: `max_concurrency` slots, one key each, taken by a first-write insert; and a request
// and token count per minute, counted up by read-modify-write.
//
// The Python worker also hands a slot straight from a call that ends to one of its own
// that waits; this one always gives its slot back and looks again, which costs a store
// round trip per call and nothing in correctness.
type SharedLimits struct {
	state *state.State
	owner string // this replica, written with a token of the take in the slots it holds
}

// NewSharedLimits keeps the limits in s, writing owner into the slots it takes.
func NewSharedLimits(s *state.State, owner string) *SharedLimits {
	return &SharedLimits{state: s, owner: owner}
}

// Slot implements Limits.
func (l *SharedLimits) Slot(ctx context.Context, p *Profile, deadline *time.Time) (func(), error) {
	if p.MaxConcurrency <= 0 {
		return func() {}, nil
	}
	keys := make([]string, p.MaxConcurrency)
	for i := range keys {
		keys[i] = contract.LimitSlotKey(p.Name, i)
	}
	ttl := int((time.Duration(p.TimeoutSeconds*float64(time.Second)) + slotGrace).Seconds())
	pause := firstLook
	for {
		key, err := l.takeFree(ctx, keys, ttl)
		if err != nil {
			return nil, err
		}
		if key != "" {
			return func() { l.giveBack(key) }, nil
		}
		wait := pause
		if deadline != nil {
			left := time.Until(*deadline)
			if left <= 0 {
				return nil, &LimitWait{Reason: p.Name + ": no free slot before the deadline"}
			}
			wait = min(wait, left)
		}
		if err := clock.Sleep(ctx, wait); err != nil {
			return nil, err
		}
		pause = time.Duration(float64(min(pause*2, lastLook)) * (0.75 + rand.Float64()/4))
	}
}

// takeFree is the key of a slot no one held, now held here; "" if all are taken.
func (l *SharedLimits) takeFree(ctx context.Context, keys []string, ttl int) (string, error) {
	found, err := l.state.GetMany(ctx, keys)
	if err != nil {
		return "", err
	}
	var free []string
	for _, k := range keys {
		if item, ok := found[k]; ok && item == nil { // a slot that failed to read may be held
			free = append(free, k)
		}
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, k := range free {
		// Unique to this take, as the Python worker writes it (`{owner}:{uuid hex}`): two
		// takes racing for one slot never write the same value.
		err := l.state.Insert(ctx, k, []byte(l.owner+":"+takeToken()), ttl)
		if errors.Is(err, state.ErrKeyTaken) {
			continue
		}
		if err != nil {
			return "", err
		}
		return k, nil
	}
	return "", nil
}

// takeToken is 32 random hex digits, like a uuid4's hex.
func takeToken() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

func (l *SharedLimits) giveBack(key string) {
	// Its own context: a job stopped mid-call must still give its slot back.
	ctx, cancel := context.WithTimeout(context.Background(), giveBackWithin)
	defer cancel()
	if err := l.state.Delete(ctx, key); err != nil {
		slog.Warn("model slot not given back; it frees with its TTL", "slot", key, "error", err.Error())
	}
}

// Admit implements Limits.
func (l *SharedLimits) Admit(ctx context.Context, p *Profile, tokens int, deadline *time.Time) error {
	rpm, tpm := p.RequestsPerMinute, p.TokensPerMinute
	if rpm <= 0 && tpm <= 0 {
		return nil
	}
	for {
		minute := time.Now().Unix() / 60
		_, _, err := l.state.Update(ctx, contract.RateWindowKey(p.Name, minute), func(data []byte) (*state.Write, error) {
			var window struct {
				Requests int `json:"requests"`
				Tokens   int `json:"tokens"`
			}
			if data != nil {
				if err := json.Unmarshal(data, &window); err != nil {
					return nil, err
				}
			}
			if (rpm > 0 && window.Requests+1 > rpm) || (tpm > 0 && window.Tokens+tokens > tpm && window.Tokens > 0) {
				return nil, &LimitWait{Reason: p.Name}
			}
			encoded, _ := json.Marshal(map[string]int{"requests": window.Requests + 1, "tokens": window.Tokens + tokens})
			return &state.Write{Data: encoded, TTLSeconds: rateWindowTTL}, nil
		})
		var wait *LimitWait
		if !errors.As(err, &wait) {
			return err
		}
		next := time.Unix((minute+1)*60, 0)
		if deadline != nil && !next.Before(*deadline) {
			return &LimitWait{Reason: p.Name + ": rate limit until after the deadline"}
		}
		slog.Info("model rate limit reached; waiting for the next minute", "profile", p.Name)
		if err := clock.Sleep(ctx, time.Until(next)); err != nil {
			return err
		}
	}
}
