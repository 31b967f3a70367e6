// The Go worker: takes jobs from the `jobs` topic through the Dapr Go SDK's HTTP
// subscription service, runs classify and embed on the configured models, stores the
// outcome, on the same wire contract as the Python worker (contracts/, apps/worker).
//
// It runs under the app id `worker`, like the Python worker: on every broker the consumer
// group follows the app id (Redis Streams' `consumerID`, RabbitMQ's queue, Kafka's group),
// so workers of both languages share one group and each message goes to one of them; and
// the components' scopes, which name `worker`, hold for it unchanged.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/service/common"
	daprhttp "github.com/dapr/go-sdk/service/http"
	"github.com/go-chi/chi/v5"

	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/logs"
	"jobrelay/worker-go/internal/models"
	"jobrelay/worker-go/internal/runner"
	"jobrelay/worker-go/internal/settings"
	"jobrelay/worker-go/internal/state"
	"jobrelay/worker-go/internal/tasks"
)

const (
	// The sidecar may start after the app (as `dapr run` starts them): wait this long.
	sidecarWait = 60 * time.Second
	// A sidecar that does not answer its metadata call within this is reported unhealthy.
	healthTimeout = 2 * time.Second
)

func main() {
	if err := run(); err != nil {
		slog.Error("worker stopped", "error", err.Error())
		os.Exit(1)
	}
}

func run() error {
	s, err := settings.Load()
	if err != nil {
		return err
	}
	logs.Setup(os.Stderr, s.LogLevel)
	catalog, err := models.LoadCatalog(s.ModelsFile)
	if err != nil {
		return err
	}
	client, err := connect()
	if err != nil {
		return err
	}
	defer client.Close()

	stopping, stop := context.WithCancelCause(context.Background())
	defer stop(runner.ErrStopping)
	st := state.New(client, contract.StateStore)
	jobs := state.NewJobs(st, s.RetentionSeconds)
	name := runner.ReplicaID()
	gateway := models.NewGateway(catalog, models.NewSharedLimits(st, name), s.MaxInflight)
	r := runner.New(stopping, jobs, client, gateway, runner.Settings{
		ClaimLease: s.ClaimLease, DuplicateHold: s.DuplicateHold,
		ArrivalGrace: s.ArrivalGrace, MaxModelCallsPerJob: s.MaxModelCallsPerJob,
	})
	r.Name = "go/" + name // as its shared-limit slots name it too

	mux := chi.NewRouter()
	if s.AppAPIToken != "" {
		mux.Use(sidecarOnly(s.AppAPIToken))
	}
	mux.Get("/healthz", healthz(client))
	service := daprhttp.NewServiceWithMux(net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), mux)
	// Every lane, as the Python worker (src/jobrelay/lanes.py), and the pre-lane topic; the
	// deliveries waiting for a model call are let in by models.FairGate (docs/fairness.md).
	for _, topic := range append(contract.LaneTopics(s.TenantShards), contract.JobsTopic) {
		sub := &common.Subscription{PubsubName: contract.PubSub, Topic: topic,
			Route: "/events/pubsub/" + topic, DeadLetterTopic: contract.DeadLetterTopic}
		if err := service.AddTopicEventHandler(sub, onJob(r)); err != nil {
			return err
		}
	}
	deadSub := &common.Subscription{PubsubName: contract.PubSub, Topic: contract.DeadLetterTopic,
		Route: "/events/pubsub/jobs-dead"}
	if err := service.AddTopicEventHandler(deadSub, onDeadLetter(r)); err != nil {
		return err
	}

	served := make(chan error, 1)
	go func() { served <- service.Start() }()
	slog.Info("worker started", "worker", r.Name, "tasks", strings.Join(tasks.Names(), ","),
		"models_file", s.ModelsFile, "port", s.Port)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-served:
		stop(runner.ErrStopping)
		return err
	case sig := <-signals:
		slog.Info("stopping", "signal", sig.String(), "grace_seconds", s.StopGrace.Seconds())
	}
	// Running jobs get the grace to end; then they are handed back (runner.handBack), so a
	// redelivery runs them at once instead of after their lease.
	timer := time.AfterFunc(s.StopGrace, func() { stop(runner.ErrStopping) })
	defer timer.Stop()
	if err := shutdown(service, s.StopGrace+5*time.Second); err != nil {
		slog.Warn("deliveries still open at exit", "error", err.Error())
	}
	stop(runner.ErrStopping)
	r.Wait()
	return nil
}

// shutdown stops taking deliveries and waits up to `within` for those in flight. The SDK's
// own Stop gives them five seconds, less than a model call may need.
func shutdown(service common.Service, within time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- service.GracefulStop() }()
	select {
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-time.After(within):
		return errors.New("timed out")
	}
}

func connect() (dapr.Client, error) {
	port := os.Getenv("DAPR_GRPC_PORT")
	if port == "" {
		port = "50001"
	}
	deadline := time.Now().Add(sidecarWait)
	for {
		client, err := dapr.NewClientWithPort(port) // reads DAPR_API_TOKEN
		if err == nil {
			return client, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no Dapr sidecar on port %s after %s: %w", port, sidecarWait, err)
		}
		time.Sleep(time.Second)
	}
}

// sidecarOnly answers only requests that carry APP_API_TOKEN in `dapr-api-token` on the
// sidecar's routes: the SDK checks it for service invocation only, and without it anyone
// who reaches the port could post forged job messages straight to a subscription route.
func sidecarOnly(token string) func(http.Handler) http.Handler {
	want := []byte(token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/dapr/") || strings.HasPrefix(r.URL.Path, "/events/") {
				if subtle.ConstantTimeCompare([]byte(r.Header.Get("dapr-api-token")), want) != 1 {
					writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{
						"code": "unauthorized", "message": "sidecar routes need the app token"}})
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// healthz is 200 once the sidecar answers, 503 while it does not: the sidecar's app health
// check then stops handing deliveries to a worker that could not store their outcome.
func healthz(client dapr.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if _, err := client.GetMetadata(ctx); err != nil {
			slog.Warn("healthz: the Dapr sidecar is not reachable", "error", err.Error())
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{
				"code": "sidecar_unavailable", "message": "the Dapr sidecar is not reachable"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// errRetry and errDrop turn a Delivery into the SDK handler's answer: (true, err) is
// RETRY, (false, err) is DROP, (false, nil) is SUCCESS.
var errRetry, errDrop = errors.New("retry"), errors.New("drop")

func answer(d runner.Delivery) (bool, error) {
	switch d {
	case runner.Retry:
		return true, errRetry
	case runner.Drop:
		return false, errDrop
	}
	return false, nil
}

// message is the JobMessage a delivery carries; an error if it is not one, which no
// redelivery would mend.
func message(e *common.TopicEvent) (contract.JobMessage, error) {
	var m contract.JobMessage
	raw := e.RawData
	var inner string
	if json.Unmarshal(raw, &inner) == nil { // the message's JSON sent as a JSON string
		raw = []byte(inner)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("not a JobMessage: %w", err)
	}
	if m.JobID == "" || m.Task == "" || m.SentAt.IsZero() {
		return m, errors.New("not a JobMessage: job_id, task and sent_at are required")
	}
	return m, nil
}

func onJob(r *runner.Runner) common.TopicEventHandler {
	return func(ctx context.Context, e *common.TopicEvent) (bool, error) {
		m, err := message(e)
		if err != nil {
			slog.Error("dropping undeliverable message to the dead-letter topic", "error", err.Error())
			return answer(runner.Drop)
		}
		d, err := r.Deliver(context.WithoutCancel(ctx), m)
		if err != nil {
			// The store is unreachable (or the record hammered): nothing was decided, so
			// the broker should try again.
			slog.Warn("store unavailable, asking for redelivery", "job_id", m.JobID, "error", err.Error())
			return answer(runner.Retry)
		}
		return answer(d)
	}
}

func onDeadLetter(r *runner.Runner) common.TopicEventHandler {
	return func(ctx context.Context, e *common.TopicEvent) (bool, error) {
		m, err := message(e)
		if err != nil {
			slog.Error("dead letter that is not a job message, discarded", "error", err.Error())
			return answer(runner.Success)
		}
		d, err := r.DeadLetter(context.WithoutCancel(ctx), m)
		if err != nil {
			slog.Warn("store unavailable for a dead letter", "job_id", m.JobID, "error", err.Error())
			return answer(runner.Retry)
		}
		return answer(d)
	}
}
