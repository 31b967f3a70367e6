package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/contracttest"
	"jobrelay/worker-go/internal/daprfake"
	"jobrelay/worker-go/internal/models"
	"jobrelay/worker-go/internal/state"
)

// These tests run the runner against two fakes, named as such: the Dapr state and publish
// calls (daprfake, which keeps Dapr's ETag rules) and a scripted OpenAI-compatible
// embeddings server. Everything the runner writes is checked against contracts/.

// scriptedModel answers embeddings with a vector that says which sentiment word a text
// holds, after failing the first `fail` calls with `status` (and `header`, if set).
type scriptedModel struct {
	mu     sync.Mutex
	fail   int
	status int
	header [2]string
	calls  int
}

func (m *scriptedModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.calls++
	failing := m.fail != 0
	if m.fail > 0 {
		m.fail--
	}
	m.mu.Unlock()
	if failing {
		if m.header[0] != "" {
			w.Header().Set(m.header[0], m.header[1])
		}
		http.Error(w, `{"error":{"message":"scripted failure","code":null}}`, m.status)
		return
	}
	var body struct {
		Input []string `json:"input"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	type datum struct {
		Index     int    `json:"index"`
		Embedding string `json:"embedding"`
	}
	out := struct {
		Data  []datum        `json:"data"`
		Model string         `json:"model"`
		Usage map[string]int `json:"usage"`
	}{Model: "scripted-embedder", Usage: map[string]int{"prompt_tokens": 3, "total_tokens": 3}}
	for i, text := range body.Input {
		v := []float32{0.1, 0.1, 0.1}
		switch t := strings.ToLower(text); {
		case strings.Contains(t, "love") || strings.Contains(t, "positive"):
			v[0] = 1
		case strings.Contains(t, "hate") || strings.Contains(t, "negative"):
			v[1] = 1
		default:
			v[2] = 1
		}
		b := make([]byte, 4*len(v))
		for d, x := range v {
			binary.LittleEndian.PutUint32(b[4*d:], math.Float32bits(x))
		}
		out.Data = append(out.Data, datum{Index: i, Embedding: base64.StdEncoding.EncodeToString(b)})
	}
	_ = json.NewEncoder(w).Encode(out)
}

type rig struct {
	dapr   *daprfake.Dapr
	model  *scriptedModel
	runner *Runner
	jobs   *state.Jobs
}

func newRig(t *testing.T, adjust func(*Settings)) *rig {
	t.Helper()
	model := &scriptedModel{status: http.StatusInternalServerError}
	server := httptest.NewServer(model)
	t.Cleanup(server.Close)
	fake := daprfake.New()
	st := state.New(fake, contract.StateStore)
	jobs := state.NewJobs(st, 3600)
	catalog := &models.Catalog{
		Profiles: map[string]*models.Profile{"local-embeddings": {
			Name: "local-embeddings", Kind: "openai", BaseURL: server.URL, Model: "scripted-embedder",
			Capabilities: []string{models.Embeddings}, MaxConcurrency: 2, TimeoutSeconds: 5, MaxAttempts: 3,
		}},
		Tasks: map[string][]string{"classify": {"local-embeddings"}, "embed": {"local-embeddings"}},
	}
	settings := Settings{ClaimLease: 10 * time.Second, DuplicateHold: 20 * time.Second,
		ArrivalGrace: 30 * time.Second, MaxModelCallsPerJob: 36}
	if adjust != nil {
		adjust(&settings)
	}
	gateway := models.NewGateway(catalog, models.NewSharedLimits(st, "test-owner"), 4)
	return &rig{dapr: fake, model: model, jobs: jobs,
		runner: New(context.Background(), jobs, fake, gateway, settings)}
}

func text(s string) *string { return &s }

// queued stores a job as intake would and answers its message.
func (g *rig) queued(t *testing.T, task string, params string, change func(*contract.JobRecord)) contract.JobMessage {
	t.Helper()
	r := &contract.JobRecord{ID: "job" + strings.ReplaceAll(t.Name(), "/", "-"), Tenant: "default",
		Task: task, Input: contract.JobInput{Text: text("I love this product!")},
		Params: contract.Object(params), Status: contract.Queued, CreatedAt: contract.Now()}
	if change != nil {
		change(r)
	}
	data, _ := json.Marshal(r)
	g.dapr.Put(contract.JobKey(r.ID), data)
	return contract.JobMessage{JobID: r.ID, Task: task, SentAt: contract.Now()}
}

func (g *rig) record(t *testing.T, id string) *contract.JobRecord {
	t.Helper()
	v, err := g.jobs.Get(context.Background(), id)
	if err != nil || v == nil {
		t.Fatalf("no record for %s: %v", id, err)
	}
	return v.Record
}

func (g *rig) deliver(t *testing.T, m contract.JobMessage) Delivery {
	t.Helper()
	d, err := g.runner.Deliver(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	g.runner.Wait()
	return d
}

// everyWriteKeepsTheContract checks each job record the runner stored, and each event it
// published, against contracts/.
func (g *rig) everyWriteKeepsTheContract(t *testing.T) {
	t.Helper()
	records, events := contracttest.Schema(t, "job-record"), contracttest.Schema(t, "job-event")
	writes, published := g.dapr.Snapshot()
	for _, w := range writes {
		if !strings.HasPrefix(w.Key, "job:") || string(w.Data) == string(contract.Tombstone) {
			continue
		}
		contracttest.Valid(t, records, "record "+w.Key, w.Data)
		if w.TTL == "" || w.TTL == "-1" {
			t.Errorf("%s written without a TTL that ends (%q)", w.Key, w.TTL)
		}
	}
	for _, e := range published {
		contracttest.Valid(t, events, "event on "+e.Topic, e.Data)
	}
}

const sentiment = `{"labels":["positive","negative","neutral"]}`

func TestAClassifyJobRunsOnceAndEverythingItWritesKeepsTheContract(t *testing.T) {
	g := newRig(t, nil)
	m := g.queued(t, "classify", sentiment, func(r *contract.JobRecord) {
		r.Watchers = []string{"status-0123456789ab"}
		r.Webhook = &contract.WebhookSpec{URL: "http://127.0.0.1:9/hook",
			Events: []contract.WebhookEvent{contract.WebhookRunning, contract.WebhookCompleted}}
	})

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Succeeded || r.Attempts != 1 || r.Error != nil {
		t.Fatalf("not a clean success: %+v", r)
	}
	var out struct {
		Label  string             `json:"label"`
		Scores map[string]float64 `json:"scores"`
	}
	_ = json.Unmarshal(r.Result.Output, &out)
	if out.Label != "positive" || len(out.Scores) != 3 {
		t.Fatalf("output %s", r.Result.Output)
	}
	if r.Worker == nil || !strings.HasPrefix(*r.Worker, "go/worker-") {
		t.Fatalf("the record does not name its worker: %v", r.Worker)
	}
	if r.QueueSeconds == nil || r.ModelSeconds == nil || len(r.ModelCalls) != 2 {
		t.Fatalf("timings or model calls missing: %+v", r)
	}
	g.everyWriteKeepsTheContract(t)
	_, published := g.dapr.Snapshot()
	topics := map[string]int{}
	for _, e := range published {
		topics[e.Topic]++
	}
	// running and succeeded, to the watchers and to the webhook.
	if topics[contract.JobEventsTopic] != 2 || topics[contract.WebhookEventsTopic] != 2 {
		t.Fatalf("events published: %v", topics)
	}

	// A redelivery of the finished job changes nothing and calls no model.
	calls := g.model.calls
	if d := g.deliver(t, m); d != Success || g.model.calls != calls || g.record(t, m.JobID).Seq != r.Seq {
		t.Fatal("a duplicate delivery ran the job again")
	}
}

func TestServerErrorsAreRetriedOnTheSameModelAndRecorded(t *testing.T) {
	g := newRig(t, nil)
	g.model.fail = 2
	g.model.header = [2]string{"retry-after-ms", "20"}
	m := g.queued(t, "embed", "{}", nil)

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Succeeded || len(r.ModelCalls) != 3 {
		t.Fatalf("want success on the third call: %+v", r)
	}
	if *r.ModelCalls[0].StatusCode != 500 || r.ModelCalls[2].Error != nil {
		t.Fatalf("calls recorded wrong: %+v", r.ModelCalls)
	}
	g.everyWriteKeepsTheContract(t)
}

func TestAModelThatKeepsFailingSendsTheJobBackForRedelivery(t *testing.T) {
	g := newRig(t, nil)
	g.model.fail = -1
	g.model.header = [2]string{"retry-after", "0"}
	m := g.queued(t, "embed", "{}", nil)

	if d := g.deliver(t, m); d != Retry {
		t.Fatalf("answered %s, want RETRY", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Queued || r.Error == nil || r.Error.Code != "model_error" || !r.Error.Retryable {
		t.Fatalf("want queued with the model's error kept: %+v", r)
	}
	if r.LeaseExpiresAt != nil || len(r.ModelCalls) != 3 {
		t.Fatalf("want the lease dropped and three calls: %+v", r)
	}
	g.everyWriteKeepsTheContract(t)

	// The dead letter lists it for the operator, then fails it with its last error.
	if d, err := g.runner.DeadLetter(context.Background(), m); d != Success || err != nil {
		t.Fatalf("dead letter answered %s, %v", d, err)
	}
	r = g.record(t, m.JobID)
	if r.Status != contract.Failed || r.Error.Code != "model_error" || !strings.Contains(r.Error.Message, "gave up") {
		t.Fatalf("not failed with its last error: %+v", r.Error)
	}
	if listed := string(g.dapr.Value(contract.DeadLettersKey("default"))); listed != `["`+m.JobID+`"]` {
		t.Fatalf("dead letters list: %s", listed)
	}
	g.everyWriteKeepsTheContract(t)
}

func TestTheModelCallBudgetEndsAJobThatWouldRetryForEver(t *testing.T) {
	g := newRig(t, func(s *Settings) { s.MaxModelCallsPerJob = 2 })
	g.model.fail = -1
	g.model.header = [2]string{"retry-after", "0"}
	m := g.queued(t, "embed", "{}", nil)

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Failed || r.Error.Code != "model_call_budget_exhausted" || len(r.ModelCalls) != 2 {
		t.Fatalf("%+v", r)
	}
	if g.dapr.Value(contract.DeadLettersKey("default")) == nil {
		t.Fatal("a job the budget ended is not listed with the dead letters")
	}
}

func TestATaskThisWorkerDoesNotRunFailsAtOnceWithCapabilityUnavailable(t *testing.T) {
	g := newRig(t, nil)
	m := g.queued(t, "summarize", "{}", nil)

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Failed || r.Error.Code != "capability_unavailable" || r.Error.Retryable {
		t.Fatalf("%+v", r.Error)
	}
	if g.model.calls != 0 {
		t.Fatal("a model was called for a task this worker does not run")
	}
	g.everyWriteKeepsTheContract(t)
}

func TestAnUploadedDocumentFailsAtOnceWithCapabilityUnavailable(t *testing.T) {
	g := newRig(t, nil)
	m := g.queued(t, "classify", sentiment, func(r *contract.JobRecord) {
		name := "scan.pdf"
		r.Input = contract.JobInput{File: &contract.FileRef{Key: "file:" + r.ID, Filename: &name,
			ContentType: "application/pdf", Size: 8, Chunks: 1, SHA256: strings.Repeat("0", 64)}}
	})
	g.dapr.Put(contract.FileChunkKey("file:"+m.JobID, 0), []byte("%PDF-1.7"))

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Failed || r.Error.Code != "capability_unavailable" || r.Error.Retryable {
		t.Fatalf("%+v", r.Error)
	}
	if !strings.Contains(r.Error.Message, "scan.pdf") || g.model.calls != 0 {
		t.Fatalf("%q, %d model calls", r.Error.Message, g.model.calls)
	}
	g.everyWriteKeepsTheContract(t)
}

func TestAnUploadOfTenChunksIsReadInCallsUnderDaprdsMessageLimit(t *testing.T) {
	g := newRig(t, nil)
	chunk := bytes.Repeat([]byte("a"), 1024*1024)
	ref := &contract.FileRef{Key: "file:big", ContentType: "text/plain", Size: 10 * len(chunk), Chunks: 10}
	for i := range ref.Chunks {
		g.dapr.Put(contract.FileChunkKey(ref.Key, i), chunk)
	}
	// All ten in one answer would pass the limit (the fake refuses it as gRPC does).
	keys := make([]string, ref.Chunks)
	for i := range keys {
		keys[i] = contract.FileChunkKey(ref.Key, i)
	}
	if _, err := g.dapr.GetBulkState(context.Background(), contract.StateStore, keys, nil, 4); err == nil {
		t.Fatal("the fake took a bulk answer over 4 MiB")
	}

	content, err := g.jobs.ReadFile(context.Background(), ref)
	if err != nil || len(content) != ref.Size {
		t.Fatalf("read %d bytes of %d: %v", len(content), ref.Size, err)
	}
}

func TestADeliveryOfAJobRunningUnderALiveClaimIsHeldThenReturned(t *testing.T) {
	g := newRig(t, func(s *Settings) { s.DuplicateHold = 50 * time.Millisecond })
	m := g.queued(t, "embed", "{}", func(r *contract.JobRecord) {
		r.Status, r.Attempts = contract.Running, 1
		r.LeaseExpiresAt = contract.TimePtr(contract.At(time.Now().Add(time.Minute)))
	})

	if d := g.deliver(t, m); d != Retry {
		t.Fatalf("answered %s, want the delivery kept with the broker", d)
	}
	if r := g.record(t, m.JobID); r.Status != contract.Running || r.Attempts != 1 {
		t.Fatalf("the live claim was disturbed: %+v", r)
	}
}

func TestALapsedClaimIsTakenOver(t *testing.T) {
	g := newRig(t, nil)
	m := g.queued(t, "embed", "{}", func(r *contract.JobRecord) {
		r.Status, r.Attempts = contract.Running, 1
		r.LeaseExpiresAt = contract.TimePtr(contract.At(time.Now().Add(-time.Second)))
	})

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	if r := g.record(t, m.JobID); r.Status != contract.Succeeded || r.Attempts != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestAJobPastItsDeadlineExpiresWithoutAModelCall(t *testing.T) {
	g := newRig(t, nil)
	m := g.queued(t, "embed", "{}", func(r *contract.JobRecord) {
		r.Deadline = contract.TimePtr(contract.At(time.Now().Add(-time.Second)))
	})

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	if r := g.record(t, m.JobID); r.Status != contract.Expired || g.model.calls != 0 {
		t.Fatalf("%+v", r)
	}
	g.everyWriteKeepsTheContract(t)
}

func TestAMessageWhoseRecordNeverCameFencesTheKey(t *testing.T) {
	g := newRig(t, func(s *Settings) { s.ArrivalGrace = 30 * time.Millisecond })
	m := contract.JobMessage{JobID: "never-stored", Task: "embed", SentAt: contract.Now()}

	if d := g.deliver(t, m); d != Success {
		t.Fatalf("answered %s", d)
	}
	if got := string(g.dapr.Value(contract.JobKey(m.JobID))); got != string(contract.Tombstone) {
		t.Fatalf("the key holds %q, not the tombstone", got)
	}
	// Intake's late store of the record now fails: the key is taken.
	err := g.jobs.State().Insert(context.Background(), contract.JobKey(m.JobID), []byte(`{}`), 60)
	if err != state.ErrKeyTaken {
		t.Fatalf("a late record could still be stored: %v", err)
	}
}

func TestAStoppingWorkerHandsItsJobBack(t *testing.T) {
	stopping, stop := context.WithCancelCause(context.Background())
	g := newRig(t, nil)
	g.runner.stopping = stopping
	g.model.fail = -1
	g.model.header = [2]string{"retry-after", "30"} // the job waits long enough to be stopped
	m := g.queued(t, "embed", "{}", nil)

	time.AfterFunc(300*time.Millisecond, func() { stop(ErrStopping) })
	if d := g.deliver(t, m); d != Retry {
		t.Fatalf("answered %s", d)
	}
	r := g.record(t, m.JobID)
	if r.Status != contract.Queued || r.Error.Code != "worker_stopped" || r.LeaseExpiresAt != nil {
		t.Fatalf("not handed back: %+v", r)
	}
	g.everyWriteKeepsTheContract(t)
}
