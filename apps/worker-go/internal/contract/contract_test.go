package contract_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/contracttest"
)

// The drift test: every property of a schema is a field of its Go type and the other way
// round, with a matching JSON type, nullability and enum. It fails when contracts/ changes
// (`make contracts`, after a change to src/jobrelay/contract.py) and these types do not: a
// Go worker that lacked a field would drop it from every record it rewrites.

var timeType = reflect.TypeOf(contract.Time{})
var objectType = reflect.TypeOf(contract.Object{})
var statusType = reflect.TypeOf(contract.Status(""))

type walker struct {
	t    *testing.T
	defs map[string]any
}

// resolve follows a $ref and strips the null branch of an anyOf; nullable says whether it had one.
func (w walker) resolve(prop map[string]any) (schema map[string]any, nullable bool) {
	if branches, ok := prop["anyOf"].([]any); ok {
		var rest []map[string]any
		for _, branch := range branches {
			b := branch.(map[string]any)
			if b["type"] == "null" {
				nullable = true
				continue
			}
			rest = append(rest, b)
		}
		if len(rest) != 1 {
			w.t.Fatalf("an anyOf with %d non-null branches: extend the drift test", len(rest))
		}
		prop = rest[0]
	}
	if ref, ok := prop["$ref"].(string); ok {
		prop = w.defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	return prop, nullable
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = f
		}
	}
	return out
}

// object checks a struct type against an object schema, recursively.
func (w walker) object(path string, schema map[string]any, goType reflect.Type) {
	props, _ := schema["properties"].(map[string]any)
	fields := jsonFields(goType)
	var inSchema, inGo []string
	for name := range props {
		inSchema = append(inSchema, name)
	}
	for name := range fields {
		inGo = append(inGo, name)
	}
	sort.Strings(inSchema)
	sort.Strings(inGo)
	if !slices.Equal(inSchema, inGo) {
		w.t.Errorf("%s: the schema has fields %v, the Go type %s has %v", path, inSchema, goType, inGo)
		return
	}
	for name, raw := range props {
		w.value(path+"."+name, raw.(map[string]any), fields[name].Type)
	}
}

func (w walker) value(path string, prop map[string]any, goType reflect.Type) {
	schema, nullable := w.resolve(prop)
	if nullable {
		switch goType.Kind() {
		case reflect.Pointer:
			goType = goType.Elem()
		default:
			w.t.Errorf("%s: nullable in the schema, but %s in Go cannot be null", path, goType)
			return
		}
	} else if goType.Kind() == reflect.Pointer {
		w.t.Errorf("%s: never null in the schema, but a pointer in Go", path)
		return
	}
	kind, _ := schema["type"].(string)
	want := map[string][]reflect.Kind{
		"string":  {reflect.String},
		"integer": {reflect.Int, reflect.Int64},
		"number":  {reflect.Float64},
		"boolean": {reflect.Bool},
		"array":   {reflect.Slice},
		"object":  {reflect.Struct, reflect.Map, reflect.Slice},
	}[kind]
	switch {
	case kind == "string" && schema["format"] == "date-time":
		if goType != timeType {
			w.t.Errorf("%s: a date-time, but %s in Go", path, goType)
		}
	case kind == "string" && schema["enum"] != nil:
		w.enum(path, schema["enum"].([]any), goType)
	case !slices.Contains(want, goType.Kind()):
		w.t.Errorf("%s: %q in the schema, %s in Go", path, kind, goType)
	case kind == "array":
		w.value(path+"[]", schema["items"].(map[string]any), goType.Elem())
	case kind == "object" && schema["properties"] != nil:
		w.object(path, schema, goType)
	case kind == "object" && goType != objectType && goType.Kind() != reflect.Map:
		w.t.Errorf("%s: an open object in the schema, %s in Go", path, goType)
	}
}

func (w walker) enum(path string, values []any, goType reflect.Type) {
	var got []string
	switch goType {
	case statusType:
		for _, s := range contract.Statuses {
			got = append(got, string(s))
		}
	case reflect.TypeOf(contract.Priority("")):
		for _, p := range contract.Priorities {
			got = append(got, string(p))
		}
	case reflect.TypeOf(contract.WebhookEvent("")):
		for _, e := range contract.WebhookEvents {
			got = append(got, string(e))
		}
	default:
		w.t.Errorf("%s: an enum in the schema, %s in Go", path, goType)
		return
	}
	var want []string
	for _, v := range values {
		want = append(want, v.(string))
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		w.t.Errorf("%s: the schema's values %v, Go's %v", path, want, got)
	}
}

func TestTheGoTypesMatchTheSchemas(t *testing.T) {
	for name, goType := range map[string]reflect.Type{
		"job-record":  reflect.TypeOf(contract.JobRecord{}),
		"job-message": reflect.TypeOf(contract.JobMessage{}),
		"job-event":   reflect.TypeOf(contract.JobEvent{}),
	} {
		t.Run(name, func(t *testing.T) {
			raw := contracttest.Raw(t, name)
			defs, _ := raw["$defs"].(map[string]any)
			walker{t: t, defs: defs}.object(name, raw, goType)
		})
	}
}

// A record as the Python services write it round-trips through the Go types unchanged, so
// nothing the Go worker does not itself change is lost when it rewrites a record.
func TestARecordWrittenByPythonRoundTripsUnchanged(t *testing.T) {
	written := `{"id":"a1","tenant":"default","priority":"high","task":"classify","input":{"text":"hi","file":null},` +
		`"params":{"labels":["a","b"],"threshold":0.5,"n":12345678901234567890},"metadata":{"k":"v"},` +
		`"status":"running","seq":2,"attempts":1,"created_at":"2026-11-21T19:39:30.177583Z",` +
		`"started_at":"2026-11-21T19:39:30.186516Z","finished_at":null,"deadline":null,` +
		`"lease_expires_at":"2026-11-21T19:43:30.186516Z","result":null,"error":null,` +
		`"queue_seconds":0.008933,"model_seconds":null,"model_calls":[],"budget_start":0,` +
		`"webhook":{"url":"http://127.0.0.1:9/h","events":["running","completed"]},` +
		`"webhook_deliveries":[{"event":"running","attempt":1,"at":"2026-11-21T19:39:30.200000Z",` +
		`"status_code":204,"error":null,"delivered":true}],"traceparent":null,` +
		`"worker":"python/worker-0123456789ab",` +
		`"batch":{"batch_id":"batch_0a","line":3,"custom_id":"c-3"},"watchers":["status-abc"]}`
	var r contract.JobRecord
	if err := json.Unmarshal([]byte(written), &r); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal([]byte(written), &a)
	_ = json.Unmarshal(again, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("changed on the way through:\n%s\n%s", written, again)
	}
	if !strings.Contains(string(again), "12345678901234567890") {
		t.Fatalf("a big integer in params lost its digits: %s", again)
	}
	contracttest.Valid(t, contracttest.Schema(t, "job-record"), "the rewritten record", again)
}

func TestMovedToRefusesAJobGoingBackwards(t *testing.T) {
	done := &contract.JobRecord{ID: "j", Status: contract.Succeeded, Seq: 3}
	if _, err := done.MovedTo(contract.Running, nil); err == nil {
		t.Fatal("succeeded -> running was allowed")
	}
	running := &contract.JobRecord{ID: "j", Status: contract.Running, Seq: 3,
		LeaseExpiresAt: contract.TimePtr(contract.Now())}
	failed, err := running.MovedTo(contract.Failed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if failed.Seq != 4 || failed.FinishedAt == nil || failed.LeaseExpiresAt != nil || running.Seq != 3 {
		t.Fatalf("a terminal move must bump seq, stamp finished_at and drop the lease, on a copy: %+v", failed)
	}
}

func TestTimesAreWrittenAsThePythonServicesWriteThem(t *testing.T) {
	at := contract.At(time.Date(2026, 11, 21, 19, 39, 30, 177583999, time.UTC))
	got, _ := json.Marshal(at)
	if string(got) != `"2026-11-21T19:39:30.177583Z"` {
		t.Fatalf("got %s", got)
	}
}

func TestLaneTopicsAreThePythonWorkersLanes(t *testing.T) {
	// src/jobrelay/lanes.py: every priority, highest first, then every shard.
	want := []string{"jobs-high-0", "jobs-high-1", "jobs-normal-0", "jobs-normal-1",
		"jobs-low-0", "jobs-low-1"}
	if got := contract.LaneTopics(2); !reflect.DeepEqual(got, want) {
		t.Fatalf("lanes %v, want %v", got, want)
	}
}
