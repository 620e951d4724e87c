// Command train-cover trains the single-crop cover-state classifier
// (package edge/coverclass) on labelled street photos, measures it by
// grouped cross-validation, and writes the model file and its manifest
// (sha256, input, training data, metrics) under models/cover-state. Run it
// from the repository root; the same data and flags give the same files:
//
//	go run ./models/cmd/train-cover
//
// which is short for
//
//	go run ./models/cmd/train-cover --labels ../shared/data/manhole/labels.csv \
//	    --images ../shared/data/manhole/images --out models/cover-state
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/gridwatch/gridwatch/edge/coverclass"
	"github.com/gridwatch/gridwatch/models"
)

func main() {
	labels := flag.String("labels", "../shared/data/manhole/labels.csv", "labels CSV: image,class,xmin,ymin,xmax,ymax")
	images := flag.String("images", "../shared/data/manhole/images", "directory of the labelled photos")
	out := flag.String("out", "models/cover-state", "directory for the model file and manifest.json")
	version := flag.String("version", "1.0.0", "model version written to the manifest")
	k := flag.Int("cv", 5, "cross-validation folds (grouped by photo)")
	repeats := flag.Int("cv-repeats", 5, "cross-validation rounds, each with its own shuffle")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *labels, *images, *out, *version, *k, *repeats); err != nil {
		fmt.Fprintln(os.Stderr, "train-cover:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, labels, images, out, version string, k, repeats int) error {
	start := time.Now()
	samples, err := coverclass.ReadLabels(labels, images)
	if err != nil {
		return err
	}
	photos := map[string]bool{}
	var ids []string
	nOpen := 0
	for _, s := range samples {
		if !photos[s.Group] {
			ids = append(ids, s.Photo)
		}
		photos[s.Group] = true
		if s.Open {
			nOpen++
		}
	}
	fmt.Fprintf(os.Stderr, "train-cover: %d boxes (%d open, %d closed) in %d photos\n",
		len(samples), nOpen, len(samples)-nOpen, len(photos))
	opt := coverclass.DefaultTrainOptions

	fmt.Fprintf(os.Stderr, "train-cover: cross-validating, %d folds × %d rounds, grouped by photo\n", k, repeats)
	cv, err := coverclass.CrossValidate(ctx, samples, nil, k, repeats, opt, progress("features"))
	if err != nil {
		return err
	}
	var cvConf coverclass.Confusion
	worst, best := 1.0, 0.0
	for _, p := range cv {
		var c coverclass.Confusion
		for i, v := range p {
			c.Add(samples[i].Open, v)
			cvConf.Add(samples[i].Open, v)
		}
		worst, best = min(worst, c.Accuracy()), max(best, c.Accuracy())
	}

	fmt.Fprintln(os.Stderr, "train-cover: training on all boxes")
	m, err := coverclass.Train(ctx, samples, opt, progress("features"))
	if err != nil {
		return err
	}
	clf := coverclass.New(m)
	var trainConf coverclass.Confusion
	for _, s := range samples {
		p, err := clf.Classify(s.Image, s.Box)
		if err != nil {
			return fmt.Errorf("%s %v: %w", s.Group, s.Box, err)
		}
		trainConf.Add(s.Open, p)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	man := models.Manifest{
		Name:    "cover-state",
		Version: version,
		File:    "cover-state-v" + version + ".json",
		Input: models.Input{
			Kind: "crop+context", Width: 64, Height: 64,
			Notes: "the cover's box resampled to 40×40 cells of luma plus a 12-cell ring of street around it; any resolution, any colour space",
		},
		Training: models.Training{
			Data: []string{fmt.Sprintf("%s (%d open/closed boxes in %d photos, images from %s)",
				labels, len(samples), len(photos), images)},
			Samples: len(samples),
			Options: opt.String(),
			Photos:  ids,
			Command: fmt.Sprintf("go run ./models/cmd/train-cover --labels %s --images %s --out %s --version %s --cv %d --cv-repeats %d", labels, images, out, version, k, repeats),
		},
		Metrics: map[string]float64{
			"cv_folds":             float64(k),
			"cv_repeats":           float64(repeats),
			"cv_accuracy":          round(cvConf.Accuracy()),
			"cv_accuracy_worst":    round(worst),
			"cv_accuracy_best":     round(best),
			"cv_open_precision":    round(cvConf.OpenPrecision()),
			"cv_open_recall":       round(cvConf.OpenRecall()),
			"train_accuracy":       round(trainConf.Accuracy()),
			"train_open_recall":    round(trainConf.OpenRecall()),
			"train_open_precision": round(trainConf.OpenPrecision()),
		},
		Notes: "P(open) >= 0.5 means open/missing. cv_* are grouped by photo (no photo on both sides) and are the fair figures; train_* are measured on the training photos themselves and are optimistic.",
	}
	man, err = models.Write(out, man, b)
	if err != nil {
		return err
	}
	fmt.Printf("cover-state %s: %d boxes, %d photos, %s\n", version, len(samples), len(photos), opt)
	fmt.Printf("  cross-validated (%d folds × %d rounds, grouped by photo): accuracy %.3f (rounds %.3f-%.3f), open precision %.3f, open recall %.3f\n",
		k, repeats, cvConf.Accuracy(), worst, best, cvConf.OpenPrecision(), cvConf.OpenRecall())
	fmt.Printf("  on its own training photos (optimistic): accuracy %.3f\n", trainConf.Accuracy())
	fmt.Printf("  wrote %s/%s (sha256 %s) and %s/manifest.json in %s\n", out, man.File, man.SHA256, out, time.Since(start).Round(time.Millisecond))
	return nil
}

func round(v float64) float64 {
	return float64(int64(v*10000+0.5)) / 10000
}

// progress reports long phases on stderr, at most once per 10 %.
func progress(what string) func(done, total int) {
	last := -1
	return func(done, total int) {
		if pct := done * 10 / total; pct != last {
			last = pct
			fmt.Fprintf(os.Stderr, "  %s %d/%d\n", what, done, total)
		}
	}
}
