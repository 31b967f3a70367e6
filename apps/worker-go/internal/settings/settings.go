// Package settings is the Go worker's one typed settings object, read from the same
// environment variables as the Python worker's (apps/worker/settings.py) and checked at
// start-up, so a bad value fails the start, not a job.
package settings

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Settings are what the worker reads from its environment.
type Settings struct {
	Host                string        // JOBRELAY_WORKER_HOST: address to bind; loopback by default
	Port                int           // JOBRELAY_WORKER_PORT, else APP_PORT (what `dapr run` sets)
	LogLevel            string        // JOBRELAY_WORKER_LOG_LEVEL
	ModelsFile          string        // JOBRELAY_WORKER_MODELS_FILE: model profiles and fallback lists
	ClaimLease          time.Duration // JOBRELAY_WORKER_CLAIM_LEASE_SECONDS: a claim holds this long unless renewed
	DuplicateHold       time.Duration // JOBRELAY_WORKER_DUPLICATE_HOLD_SECONDS: a second delivery waits this long
	ArrivalGrace        time.Duration // JOBRELAY_WORKER_ARRIVAL_GRACE_SECONDS: a message waits this long for its record
	MaxInflight         int           // JOBRELAY_WORKER_MAX_INFLIGHT: model calls in flight in this worker
	MaxModelCallsPerJob int           // JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB: over all attempts
	RetentionSeconds    int           // JOBRELAY_RETENTION_SECONDS: terminal records live this long
	AppAPIToken         string        // APP_API_TOKEN: what the sidecar sends in `dapr-api-token`
	StopGrace           time.Duration // JOBRELAY_WORKER_STOP_GRACE_SECONDS: running jobs' time to end on SIGTERM
	TenantShards        int           // JOBRELAY_TENANT_SHARDS: lanes per priority (src/jobrelay/lanes.py)
}

// Defaults and bounds are those of apps/worker/settings.py and src/jobrelay/constants.py;
// see there for why each value.
const (
	defaultClaimLeaseSeconds    = 240
	defaultDuplicateHoldSeconds = 270
	defaultArrivalGraceSeconds  = 30
)

type reader struct{ err error }

func (r *reader) str(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func (r *reader) integer(name string, def, lo, hi int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(fmt.Errorf("%s=%q: want an integer in [%d, %d]", name, v, lo, hi))
		return def
	}
	return n
}

func (r *reader) seconds(name string, def float64) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return time.Duration(def * float64(time.Second))
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		r.fail(fmt.Errorf("%s=%q: want a number of seconds above 0", name, v))
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Load reads and checks the settings.
func Load() (*Settings, error) {
	r := &reader{}
	port := r.integer("APP_PORT", 8004, 1, 65535)
	s := &Settings{
		Host:                r.str("JOBRELAY_WORKER_HOST", "127.0.0.1"),
		Port:                r.integer("JOBRELAY_WORKER_PORT", port, 1, 65535),
		LogLevel:            r.str("JOBRELAY_WORKER_LOG_LEVEL", "INFO"),
		ModelsFile:          r.str("JOBRELAY_WORKER_MODELS_FILE", "config/models.yaml"),
		ClaimLease:          r.seconds("JOBRELAY_WORKER_CLAIM_LEASE_SECONDS", defaultClaimLeaseSeconds),
		DuplicateHold:       r.seconds("JOBRELAY_WORKER_DUPLICATE_HOLD_SECONDS", defaultDuplicateHoldSeconds),
		ArrivalGrace:        r.seconds("JOBRELAY_WORKER_ARRIVAL_GRACE_SECONDS", defaultArrivalGraceSeconds),
		MaxInflight:         r.integer("JOBRELAY_WORKER_MAX_INFLIGHT", 8, 1, 1024),
		MaxModelCallsPerJob: r.integer("JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB", 36, 1, 1000),
		RetentionSeconds:    r.integer("JOBRELAY_RETENTION_SECONDS", 24*3600, 60, 1<<31-1),
		AppAPIToken:         r.str("APP_API_TOKEN", ""),
		StopGrace:           r.seconds("JOBRELAY_WORKER_STOP_GRACE_SECONDS", 25),
		TenantShards:        r.integer("JOBRELAY_TENANT_SHARDS", 4, 1, 16),
	}
	if r.err != nil {
		return nil, r.err
	}
	if s.DuplicateHold <= s.ClaimLease {
		// A held duplicate must outwait the lease, or a dead worker's job would wait for
		// the broker's redelivery instead of the held copy.
		return nil, fmt.Errorf("JOBRELAY_WORKER_DUPLICATE_HOLD_SECONDS (%s) must exceed the claim lease (%s)",
			s.DuplicateHold, s.ClaimLease)
	}
	return s, nil
}
