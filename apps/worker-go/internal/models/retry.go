package models

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// The retry rules of apps/worker/retry.py, in one place:
//
//   - Rate limits (429), 408, 409, server errors (5xx), timeouts and unreachable endpoints
//     are the backend's passing trouble: retried on the same model with exponential backoff
//     and jitter, after the Retry-After the backend asked for (clamped), never into the
//     job's deadline; then the next model of the task's fallback list.
//   - An input too long for the model's context goes straight to the next model.
//   - Any other 4xx is the provider refusing this input: the job fails at once.
//
// Dapr's resiliency policy cannot read a model's Retry-After, which is why this is here.
const (
	// MaxRetryAfter: a backend asking for longer is treated as asking for this; the
	// deadline and the next model are better bets than a long sleep.
	MaxRetryAfter = 60 * time.Second
)

// Verdict is what a failed call leads to.
type Verdict int

const (
	Fatal     Verdict = iota // nobody will take it: fail the job
	Retry                    // same model again, after a wait
	NextModel                // this model cannot take it; the next one may
)

// StatusError is a model endpoint's non-2xx answer.
type StatusError struct {
	StatusCode int
	Code       string        // the OpenAI error body's `code`, if any
	Message    string        // its `message`, or the body
	RetryAfter time.Duration // what the backend asked for; 0 if nothing usable
}

func (e *StatusError) Error() string {
	return "model answered " + strconv.Itoa(e.StatusCode) + ": " + e.Message
}

// As lets backoff.Retry see the wait a backend asked for without losing the error itself:
// the last try's error must reach the job record as the model's own.
func (e *StatusError) As(target any) bool {
	if t, ok := target.(**backoff.RetryAfterError); ok && e.RetryAfter > 0 {
		*t = &backoff.RetryAfterError{Duration: e.RetryAfter}
		return true
	}
	return false
}

// TransportError is a call that got no answer: refused, reset, or timed out.
type TransportError struct {
	Err     error
	Timeout bool
}

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

var contextCodes = map[string]bool{"context_length_exceeded": true, "string_above_max_length": true}

// VerdictOf classifies a failed call.
func VerdictOf(err error) Verdict {
	var transport *TransportError
	if errors.As(err, &transport) {
		return Retry
	}
	var se *StatusError
	if !errors.As(err, &se) {
		return Fatal
	}
	switch {
	case se.StatusCode == http.StatusTooManyRequests, se.StatusCode == http.StatusRequestTimeout,
		se.StatusCode == http.StatusConflict, se.StatusCode >= 500:
		return Retry
	case se.StatusCode == http.StatusBadRequest && isContextLength(se):
		return NextModel
	}
	return Fatal
}

func isContextLength(se *StatusError) bool {
	text := strings.ToLower(se.Code + " " + se.Message)
	return contextCodes[se.Code] || strings.Contains(text, "context length") ||
		strings.Contains(text, "context_length")
}

// RetryAfter is the wait a backend asked for (`retry-after-ms`, or `Retry-After` in seconds
// or as an HTTP date), or 0; a malformed value (`5s`, `nan`, a date without a zone) is
// ignored and the usual backoff applies.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if ms := h.Get("retry-after-ms"); ms != "" {
		if d, ok := seconds(ms, 1.0/1000); ok {
			return d
		}
	}
	value := strings.TrimSpace(h.Get("retry-after"))
	if value == "" {
		return 0
	}
	if value[0] >= '0' && value[0] <= '9' {
		d, _ := seconds(value, 1)
		return d
	}
	when, err := http.ParseTime(value)
	if err != nil || !strings.HasSuffix(value, "GMT") {
		return 0
	}
	return max(when.Sub(now), 0)
}

func seconds(value string, scale float64) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return time.Duration(max(f*scale, 0) * float64(time.Second)), true
}

// newBackOff is exponential with jitter: between half and all of a ceiling that starts at
// 0.5 s and doubles up to 20 s (apps/worker/retry.py's backoff_seconds), so retries of
// many jobs spread out. backoff's randomization is ±factor around the interval: 0.75 of
// the ceiling ±1/3 gives exactly [ceiling/2, ceiling].
func newBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 375 * time.Millisecond
	b.Multiplier = 2
	b.RandomizationFactor = 1.0 / 3
	b.MaxInterval = 15 * time.Second
	return b
}
