// Package contract holds the wire contract in Go: the job record in the state store, the
// message on the `jobs` topic and the event on `job-events` / `job-webhooks`.
//
// The source of truth is contracts/*.schema.json (generated from src/jobrelay/contract.py).
// These types mirror them field for field, and contract_test.go fails when the two drift:
// a worker that dropped a field it does not know would erase it from every record it writes.
package contract

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is where a job is in its life. Only queued and running are not terminal.
type Status string

// Priority is a job's lane (src/jobrelay/lanes.py); the order of Priorities is the order a
// worker serves them.
type Priority string

// The priorities, served first to last.
const (
	High   Priority = "high"
	Normal Priority = "normal"
	Low    Priority = "low"
)

// Priorities in the order a worker serves them, as src/jobrelay/contract/status.py.
var Priorities = []Priority{High, Normal, Low}

const (
	Queued    Status = "queued"    // accepted and published; no worker holds it
	Running   Status = "running"   // a worker has claimed it and is calling the model
	Succeeded Status = "succeeded" // the result is stored
	Failed    Status = "failed"    // gave up; `error` says why
	Cancelled Status = "cancelled" // the client cancelled it; any result was discarded
	Expired   Status = "expired"   // its deadline passed before a worker started it
)

// Statuses lists every status, for the drift test against the schema's enum.
var Statuses = []Status{Queued, Running, Succeeded, Failed, Cancelled, Expired}

// Terminal reports whether no status may follow this one.
func (s Status) Terminal() bool { return s != Queued && s != Running }

// transitions says which status may follow which: a write outside it is refused, so a late
// or duplicate message can never move a job backwards (jobrelay.contract.TRANSITIONS).
var transitions = map[Status]map[Status]bool{
	Queued: {Running: true, Failed: true, Cancelled: true, Expired: true},
	// running -> queued hands a job back for a retry; running -> running is a takeover.
	Running: {Queued: true, Running: true, Succeeded: true, Failed: true, Cancelled: true},
}

// Time is a timestamp as the Python services write it: UTC, microseconds, a `Z`.
type Time struct{ time.Time }

const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Now is the current time, at the precision the contract keeps.
func Now() Time { return Time{time.Now().UTC().Truncate(time.Microsecond)} }

// At wraps t in the contract's precision.
func At(t time.Time) Time { return Time{t.UTC().Truncate(time.Microsecond)} }

func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(timeLayout) + `"`), nil
}

func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// TimePtr is a pointer to a copy of t, for the nullable timestamps.
func TimePtr(t Time) *Time { return &t }

// Object is a JSON object kept as its bytes, so params and outputs written by other workers
// round-trip unchanged (numbers included). Empty marshals as `{}`, never `null`.
type Object json.RawMessage

func (o Object) MarshalJSON() ([]byte, error) {
	if len(o) == 0 {
		return []byte("{}"), nil
	}
	return json.RawMessage(o).MarshalJSON()
}

func (o *Object) UnmarshalJSON(b []byte) error {
	*o = append((*o)[:0], b...)
	return nil
}

// FileRef is an uploaded file, stored in chunks under `file:{job_id}:{n}`.
type FileRef struct {
	Key         string  `json:"key"`          // key prefix of the chunks: `file:{job_id}`
	Filename    *string `json:"filename"`     // the name the client gave the file
	ContentType string  `json:"content_type"` // media type, e.g. `text/plain`
	Size        int     `json:"size"`         // bytes
	Chunks      int     `json:"chunks"`       // number of stored chunks
	SHA256      string  `json:"sha256"`       // hex SHA-256 of the whole file
}

// JobInput is what the model works on: text, or an uploaded file.
type JobInput struct {
	Text *string  `json:"text"` // the text to work on
	File *FileRef `json:"file"` // an uploaded file, by reference
}

// WebhookEvent is which status changes a webhook is told about.
type WebhookEvent string

const (
	WebhookStart     WebhookEvent = "start"     // a worker started the job
	WebhookOutput    WebhookEvent = "output"    // streamed text so far (chat, summarize: Python only)
	WebhookCompleted WebhookEvent = "completed" // the job became terminal, whatever the outcome
	WebhookFailed    WebhookEvent = "failed"    // the job failed, expired or was cancelled
	WebhookRunning   WebhookEvent = "running"   // the old name of start, still accepted
)

// WebhookEvents lists every webhook event, for the drift test against the schema's enum.
var WebhookEvents = []WebhookEvent{
	WebhookStart, WebhookOutput, WebhookCompleted, WebhookFailed, WebhookRunning,
}

// WebhookSpec is where to POST the job when it changes.
type WebhookSpec struct {
	URL    string         `json:"url"`    // http(s) URL that receives the job
	Events []WebhookEvent `json:"events"` // status changes to deliver
}

// WebhookDelivery is one attempt to deliver a webhook (written by status, kept here).
type WebhookDelivery struct {
	Event      WebhookEvent `json:"event"`       // what was delivered
	Attempt    int          `json:"attempt"`     // 1 for the first try
	At         Time         `json:"at"`          // when the attempt was made
	StatusCode *int         `json:"status_code"` // the receiver's answer, if any
	Error      *string      `json:"error"`       // why it failed, if it did
	Delivered  bool         `json:"delivered"`   // whether the receiver answered 2xx
}

// Usage is the tokens the model counted for the job.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`     // tokens in the input
	CompletionTokens int `json:"completion_tokens"` // tokens the model generated
	TotalTokens      int `json:"total_tokens"`      // prompt_tokens + completion_tokens
}

// JobResult is what the model produced.
type JobResult struct {
	Output Object `json:"output"` // the task's output; its shape depends on the task
	Model  string `json:"model"`  // the model that answered
	Usage  Usage  `json:"usage"`  // token usage of every model call the job made
}

// ModelCall is one call to a model while running the job.
type ModelCall struct {
	Profile    string  `json:"profile"`     // the model profile called (config/models.yaml)
	Model      string  `json:"model"`       // the model id at that endpoint
	Attempt    int     `json:"attempt"`     // the job's attempt this call was in
	StartedAt  Time    `json:"started_at"`  // when the call started
	Seconds    float64 `json:"seconds"`     // how long it took
	Error      *string `json:"error"`       // why it failed; null if it answered
	StatusCode *int    `json:"status_code"` // the backend's HTTP status
}

// JobError is why a job failed (or, while queued again, what went wrong last).
type JobError struct {
	Code      string `json:"code"`      // stable machine-readable code
	Message   string `json:"message"`   // what went wrong, for a person
	Retryable bool   `json:"retryable"` // whether submitting the same job again may succeed
}

// BatchLine is the line of an OpenAI-style batch a job was made from. This worker keeps it
// on the record it rewrites; it does not publish `batch-events` (intake's batches catch up
// on such jobs by reading their statuses in bulk when their counts stop moving).
type BatchLine struct {
	BatchID  string `json:"batch_id"`  // the batch, `batch_...`
	Line     int    `json:"line"`      // the 1-based line of its input file
	CustomID string `json:"custom_id"` // the line's custom_id
}

// JobRecord is the job as stored under `job:{id}`: the single source of truth.
type JobRecord struct {
	ID                string            `json:"id"`                 // random UUID4 hex
	Tenant            string            `json:"tenant"`             // owner of the job
	Priority          Priority          `json:"priority"`           // its lane: high, normal or low
	Task              string            `json:"task"`               // task name, e.g. `classify`
	Input             JobInput          `json:"input"`              // the task's input
	Params            Object            `json:"params"`             // task parameters
	Metadata          map[string]string `json:"metadata"`           // client labels, echoed
	Status            Status            `json:"status"`             // where the job is in its life
	Seq               int               `json:"seq"`                // bumped on every status change
	Attempts          int               `json:"attempts"`           // times a worker started the job
	CreatedAt         Time              `json:"created_at"`         // when intake accepted the job
	StartedAt         *Time             `json:"started_at"`         // when a worker last claimed it
	FinishedAt        *Time             `json:"finished_at"`        // when it became terminal
	Deadline          *Time             `json:"deadline"`           // not started by then: expired
	LeaseExpiresAt    *Time             `json:"lease_expires_at"`   // until when the claim holds
	Result            *JobResult        `json:"result"`             // set when succeeded
	Error             *JobError         `json:"error"`              // set when failed; last error else
	QueueSeconds      *float64          `json:"queue_seconds"`      // waiting before the first start
	ModelSeconds      *float64          `json:"model_seconds"`      // time in model calls, all attempts
	ModelCalls        []ModelCall       `json:"model_calls"`        // every model call, failed ones too
	BudgetStart       int               `json:"budget_start"`       // model calls before the last replay
	Webhook           *WebhookSpec      `json:"webhook"`            // where to deliver changes
	WebhookDeliveries []WebhookDelivery `json:"webhook_deliveries"` // every delivery attempt
	Traceparent       *string           `json:"traceparent"`        // W3C traceparent of the submit
	Worker            *string           `json:"worker"`             // who made the latest claim
	Batch             *BatchLine        `json:"batch"`              // the batch line it came from
	Watchers          []string          `json:"watchers"`           // replicas waiting on the job
}

// MarshalJSON writes every field, as the Python services do, with empty lists and maps as
// `[]` and `{}` (the schema allows no null there).
func (r JobRecord) MarshalJSON() ([]byte, error) {
	type plain JobRecord
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	if r.ModelCalls == nil {
		r.ModelCalls = []ModelCall{}
	}
	if r.WebhookDeliveries == nil {
		r.WebhookDeliveries = []WebhookDelivery{}
	}
	if r.Watchers == nil {
		r.Watchers = []string{}
	}
	if r.Priority == "" {
		r.Priority = Normal // a record from before priorities: the default lane
	}
	return json.Marshal(plain(r))
}

// Clone is a copy that shares nothing a change would append to.
func (r *JobRecord) Clone() *JobRecord {
	c := *r
	c.ModelCalls = append([]ModelCall(nil), r.ModelCalls...)
	c.WebhookDeliveries = append([]WebhookDelivery(nil), r.WebhookDeliveries...)
	c.Watchers = append([]string(nil), r.Watchers...)
	return &c
}

// IllegalTransition is a write that would move a job to a status that may not follow.
type IllegalTransition struct {
	JobID    string
	From, To Status
}

func (e *IllegalTransition) Error() string {
	return fmt.Sprintf("job %s: %s -> %s", e.JobID, e.From, e.To)
}

// MovedTo is a copy in `status` with `change` applied, or IllegalTransition. A terminal
// status stamps finished_at and drops the lease, as jobrelay.contract.JobRecord.moved_to.
func (r *JobRecord) MovedTo(status Status, change func(*JobRecord)) (*JobRecord, error) {
	if !transitions[r.Status][status] {
		return nil, &IllegalTransition{JobID: r.ID, From: r.Status, To: status}
	}
	c := r.Clone()
	c.Status = status
	c.Seq = r.Seq + 1
	if status.Terminal() {
		c.FinishedAt = TimePtr(Now())
		c.LeaseExpiresAt = nil
	}
	if change != nil {
		change(c)
	}
	return c, nil
}

// JobMessage is the message on the `jobs` topic: a claim check on the stored record.
type JobMessage struct {
	JobID  string `json:"job_id"`  // key of the record, without the `job:` prefix
	Task   string `json:"task"`    // task name, for routing before the record is read
	SentAt Time   `json:"sent_at"` // when intake published it, before storing the record
}

// JobEvent is a job's change of status, on `job-events` and `job-webhooks`: ids and status
// only, so nothing a client sent or a model answered leaves the encrypted store.
type JobEvent struct {
	JobID    string   `json:"job_id"`   // the job
	Tenant   string   `json:"tenant"`   // the job's owner
	Seq      int      `json:"seq"`      // the record's seq after the change
	Status   Status   `json:"status"`   // the status it changed to
	Watchers []string `json:"watchers"` // the replicas waiting on the job
	// Delta is set on a streamed-text event, which only the Python worker sends.
	Delta *int `json:"delta,omitempty"`
}

// EventOf is the event for a record just written.
func EventOf(r *JobRecord) JobEvent {
	watchers := r.Watchers
	if watchers == nil {
		watchers = []string{}
	}
	return JobEvent{JobID: r.ID, Tenant: r.Tenant, Seq: r.Seq, Status: r.Status, Watchers: watchers}
}

// WantsWebhook reports whether the record's webhook asked to hear of its current status.
func WantsWebhook(r *JobRecord) bool {
	if r.Webhook == nil {
		return false
	}
	// As WebhookSpec.wanted in packages/contract: `running` is read as `start`, and a
	// terminal change is wanted by `completed`, and by `failed` unless it succeeded.
	for _, e := range r.Webhook.Events {
		switch {
		case r.Status == Running && (e == WebhookStart || e == WebhookRunning):
			return true
		case r.Status.Terminal() && e == WebhookCompleted:
			return true
		case r.Status.Terminal() && r.Status != Succeeded && e == WebhookFailed:
			return true
		}
	}
	return false
}
