package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/imagery"
)

// heldOut are the shipped cross-trained networks with the pooled F1 measured
// on the set each did NOT learn from when it was committed (catalog.json),
// minus 0.01 for floating-point drift.
var heldOut = []struct {
	model, pairs string
	minF1        float64
}{
	{"change-cnn-levir.json", "dsifn", 0.4558 - 0.01},
	{"change-cnn-dsifn.json", "levir", 0.4192 - 0.01},
}

func root(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s", d)
	}
	return d
}

// The shipped networks keep the held-out F1 they were committed with; a
// regression in the network, its loading or the post-processing fails here.
func TestHeldOut(t *testing.T) {
	for _, tc := range heldOut {
		t.Run(tc.model, func(t *testing.T) {
			dir := filepath.Join(root(t), "..", "shared", "data", "change", tc.pairs)
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("test data %s is missing: %v", dir, err)
			}
			m, e, err := imagery.LoadModel(filepath.Join(root(t), "models", "imagery", tc.model))
			if err != nil {
				t.Fatal(err)
			}
			names, err := imagery.PairNames(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if slices.Contains(m.TrainedOn, n) {
					t.Fatalf("pair %s is in %s's training data", n, tc.model)
				}
			}
			res, err := imagery.Eval(context.Background(), m, dir, imagery.EvalOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (trained on %s) on %s: F1 %.4f P %.4f R %.4f", tc.model, e.TrainingData, tc.pairs,
				res.Total.F1(), res.Total.Precision(), res.Total.Recall())
			if f1 := res.Total.F1(); f1 < tc.minF1 {
				t.Fatalf("held-out F1 %.4f < %.4f", f1, tc.minF1)
			}
		})
	}
}
