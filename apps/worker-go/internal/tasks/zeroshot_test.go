package tasks

import (
	"encoding/json"
	"math"
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
