package tasks

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestPrototypeTextsReplaceTheLabelOnlyWhereTheTemplateSaysSo(t *testing.T) {
	got := PrototypeTexts("bug", "Something broken.", []string{"It crashes"}, []string{"{label}", "About {label}: {other}"})
	want := []string{"bug", "About bug: {other}", "Something broken.", "It crashes"}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v", got)
		}
	}
}

func TestSingleLabelScoresAreRankedSoftmaxRoundedAsPythonRoundsThem(t *testing.T) {
	out, _ := json.Marshal(single([]string{"a", "b", "c"}, []float64{0.1, 0.3, 0.2}))
	// exp((s - max) / 0.05) normalised: b 0.8668, c 0.1173, a 0.0159, in that order.
	if string(out) != `{"label":"b","scores":{"b":0.8668,"c":0.1173,"a":0.0159}}` {
		t.Fatalf("%s", out)
	}
}

func TestMultiLabelKeepsTheBestAndThoseAboveTheThreshold(t *testing.T) {
	got := multi([]string{"a", "b", "c", "d"}, []float64{0.50, 0.49, 0.10, 0.05}, 0.75)
	if got.Label != "a" || len(got.Labels) != 2 || got.Labels[1] != "b" {
		t.Fatalf("%+v", got)
	}
	z := Standardised([]float64{1, 2, 3})
	if math.Abs(z[2]-1.2247) > 1e-4 { // population std, as numpy's
		t.Fatalf("%v", z)
	}
}

// The recipe must give a job the same labels whichever worker runs it, so its constants
// are read from the Python worker's source (apps/worker/tasks/zero_shot.py) and compared:
// when one side changes them and the other does not, this fails.
func TestTheRecipeConstantsAreThePythonWorkers(t *testing.T) {
	source, err := os.ReadFile(filepath.Join("..", "..", "..", "worker", "tasks", "zero_shot.py"))
	if err != nil {
		t.Fatal(err)
	}
	assigned := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + ` = (.+)$`).FindSubmatch(source)
		if m == nil {
			t.Fatalf("%s not found in zero_shot.py", name)
		}
		return strings.TrimSpace(string(m[1]))
	}
	var templates []string
	for _, m := range regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(assigned("DEFAULT_TEMPLATES"), -1) {
		templates = append(templates, m[1])
	}
	if !slices.Equal(templates, DefaultTemplates) {
		t.Errorf("DefaultTemplates %q, the Python worker's %q", DefaultTemplates, templates)
	}
	for name, value := range map[string]float64{
		"SOFTMAX_TEMPERATURE": SoftmaxTemperature, "MULTI_LABEL_THRESHOLD": MultiLabelThreshold,
	} {
		python, err := strconv.ParseFloat(assigned(name), 64)
		if err != nil || python != value {
			t.Errorf("%s: Go %v, Python %q", name, value, assigned(name))
		}
	}
}
