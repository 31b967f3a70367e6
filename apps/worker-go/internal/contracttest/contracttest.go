// Package contracttest loads contracts/*.schema.json for the Go worker's tests: the
// published wire contract is what the records and messages it writes are checked against.
package contracttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Dir is the repository's contracts/ folder, found upwards from the test's directory.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		candidate := filepath.Join(dir, "contracts")
		if _, err := os.Stat(filepath.Join(candidate, "job-record.schema.json")); err == nil {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("contracts/ not found above the test's folder")
		}
		dir = parent
	}
}

// Raw is a schema as plain JSON, for the drift test to walk.
func Raw(t testing.TB, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(t), name+".schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Schema is the compiled schema contracts/<name>.schema.json, asserting formats
// (date-time included), which draft 2020-12 leaves as annotations by default.
func Schema(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join(Dir(t), name+".schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Valid fails the test unless data (JSON) is valid against the schema.
func Valid(t testing.TB, s *jsonschema.Schema, what string, data []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, data)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("%s breaks the contract: %v\n%s", what, err, data)
	}
}
