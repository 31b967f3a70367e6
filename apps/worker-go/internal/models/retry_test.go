package models

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

func TestRetryAfterReadsWhatBackendsSendAndIgnoresTheRest(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, key, value string
		want             time.Duration
	}{
		{"milliseconds first", "retry-after-ms", "250", 250 * time.Millisecond},
		{"seconds", "retry-after", "2", 2 * time.Second},
		{"fractional seconds", "retry-after", "1.5", 1500 * time.Millisecond},
		{"an HTTP date", "retry-after", "Sat, 21 Nov 2026 12:00:05 GMT", 5 * time.Second},
		{"a date past", "retry-after", "Sat, 21 Nov 2026 11:00:00 GMT", 0},
		{"units are not a number", "retry-after", "5s", 0},
		{"nan would never wait", "retry-after", "nan", 0},
		{"negative", "retry-after", "-3", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(c.key, c.value)
			if got := RetryAfter(h, now); got != c.want {
				t.Fatalf("%s: %s -> %s, want %s", c.key, c.value, got, c.want)
			}
		})
	}
}

func TestWhatIsRetriedWhatMovesOnAndWhatFails(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Verdict
	}{
		{&StatusError{StatusCode: 429}, Retry},
		{&StatusError{StatusCode: 503}, Retry},
		{&StatusError{StatusCode: 408}, Retry},
		{&TransportError{Err: errors.New("refused")}, Retry},
		{&StatusError{StatusCode: 400, Code: "context_length_exceeded"}, NextModel},
		{&StatusError{StatusCode: 400, Message: "maximum context length is 512"}, NextModel},
		{&StatusError{StatusCode: 400, Message: "bad input"}, Fatal},
		{&StatusError{StatusCode: 401}, Fatal},
		{errors.New("anything else"), Fatal},
	} {
		if got := VerdictOf(c.err); got != c.want {
			t.Errorf("%v: verdict %d, want %d", c.err, got, c.want)
		}
	}
}

// The backoff library honours the wait a backend asked for while keeping the model's own
// error, which is what the job records when the retries run out.
func TestAStatusErrorCarriesItsRetryAfterToTheBackoff(t *testing.T) {
	err := error(&StatusError{StatusCode: 429, RetryAfter: 3 * time.Second})
	var wait *backoff.RetryAfterError
	if !errors.As(err, &wait) || wait.Duration != 3*time.Second {
		t.Fatalf("got %v", wait)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 {
		t.Fatal("the model's error is lost")
	}
}

func TestBackoffStaysBetweenHalfAndAllOfItsDoublingCeiling(t *testing.T) {
	b := newBackOff()
	for attempt, ceiling := 1, 500*time.Millisecond; attempt <= 8; attempt, ceiling = attempt+1, min(ceiling*2, 20*time.Second) {
		got := b.NextBackOff()
		if got < ceiling/2-time.Millisecond || got > ceiling+time.Millisecond {
			t.Fatalf("attempt %d waits %s, outside [%s, %s]", attempt, got, ceiling/2, ceiling)
		}
	}
}
