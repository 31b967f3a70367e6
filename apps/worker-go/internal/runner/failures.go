package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/status"

	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/models"
	"jobrelay/worker-go/internal/state"
	"jobrelay/worker-go/internal/tasks"
)

// deadlinePassed: the job's deadline came while its model call was running.
type deadlinePassed struct{ deadline time.Time }

func (e *deadlinePassed) Error() string {
	return fmt.Sprintf("deadline %s passed during the call", e.deadline.Format(time.RFC3339Nano))
}

// unimplemented is why a task this worker does not run fails here (see README, Polyglot
// workers): Dapr pub/sub cannot hand a message back to the consumer group. A RETRY is
// redelivered by this same sidecar to this same worker, until the resiliency policy sends
// it to the dead letters; republishing it would need the worker to publish `jobs`, which
// only intake may, and would loop for ever with no Python worker running. So the job fails
// at once with the contract's code, saying which worker can run it.
func unimplemented(task string) string {
	return fmt.Sprintf("task %q is not run by this worker (go, which runs %v); run it on the "+
		"Python worker (apps/worker), or keep it off topics the Go worker reads", task, tasks.Names())
}

// unreadDocument is why a text task on an uploaded PDF or image fails here.
func unreadDocument(task, name, contentType string) string {
	return fmt.Sprintf("%s is a document (%s) that %s would read first (OCR, a PDF's text), which "+
		"only the Python worker (apps/worker) does; this worker (go) reads text uploads only",
		name, contentType, task)
}

// grpcError is a failure of the sidecar or the store behind it.
type grpcError interface{ GRPCStatus() *status.Status }

// Describe is the JobError for a failed attempt: a stable code, the reason, and whether a
// later delivery may succeed (apps/worker/failures.py, code for code).
func Describe(err error) *contract.JobError {
	var (
		se        *models.StatusError
		transport *models.TransportError
		deadline  *deadlinePassed
		capUnav   *models.CapabilityUnavailable
		budget    *models.BudgetSpent
		limit     *models.LimitWait
		unread    *unreadableInput
		grpcErr   grpcError
	)
	switch {
	case errors.As(err, &deadline):
		return &contract.JobError{Code: "deadline_exceeded", Message: err.Error()}
	case errors.As(err, &se):
		switch {
		case se.StatusCode == http.StatusTooManyRequests:
			return &contract.JobError{Code: "model_rate_limited", Message: se.Error(), Retryable: true}
		case se.StatusCode >= 500:
			return &contract.JobError{Code: "model_error", Message: se.Error(), Retryable: true}
		}
		return &contract.JobError{Code: "model_rejected", Message: se.Error()}
	case errors.As(err, &transport) && transport.Timeout:
		return &contract.JobError{Code: "model_timeout", Message: "the model did not answer in time", Retryable: true}
	case errors.As(err, &transport):
		return &contract.JobError{Code: "model_unavailable", Message: err.Error(), Retryable: true}
	case errors.As(err, &capUnav):
		return &contract.JobError{Code: "capability_unavailable", Message: err.Error()}
	case errors.As(err, &budget):
		return &contract.JobError{Code: "model_call_budget_exhausted", Message: err.Error()}
	case errors.As(err, &limit):
		return &contract.JobError{Code: "model_rate_limited", Message: err.Error(), Retryable: true}
	case errors.As(err, &unread):
		return &contract.JobError{Code: "invalid_input", Message: err.Error()}
	case errors.As(err, &grpcErr), errors.Is(err, state.ErrContended):
		// The sidecar or the store behind it is down (say, Redis restarting): nothing is
		// wrong with the job, so it goes back for a later delivery.
		return &contract.JobError{Code: "store_unavailable", Message: err.Error(), Retryable: true}
	}
	return &contract.JobError{Code: "internal_error", Message: fmt.Sprintf("%T: %v", err, err)}
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }
