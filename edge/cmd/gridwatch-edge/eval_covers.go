package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gridwatch/gridwatch/edge/coverclass"
)

// `gridwatch-edge eval covers`: the single-crop cover-state classifier on
// labelled street photos. Every open or closed box is one cover to classify;
// other classes are context.
//
// A model measured on the photos it was trained on looks better than it is,
// so the eval checks every photo against the training photos listed in the
// model's manifest, and its headline (n, accuracy, open_precision,
// open_recall in --json) is always a fair figure:
//   - no photo seen in training: the shipped model on all of them;
//   - some seen: the shipped model on the unseen ones only;
//   - all seen (the training set itself): grouped cross-validation, which
//     retrains with the shipped model's recipe, K folds by photo.
//
// The shipped model's figure on all boxes is always printed as well.
func init() { evals["covers"] = evalCovers }

// coversResult is the --json line; Measure says which figure the headline is.
type coversResult struct {
	N             int     `json:"n"`
	Accuracy      float64 `json:"accuracy"`
	OpenPrecision float64 `json:"open_precision"`
	OpenRecall    float64 `json:"open_recall"`
	MsPerCrop     float64 `json:"ms_per_crop"`
	Measure       string  `json:"measure"`

	Model                string  `json:"model"`
	ModelSHA256          string  `json:"model_sha256"`
	NBoxes               int     `json:"n_boxes"`
	NSeenInTraining      int     `json:"n_seen_in_training"` // boxes whose photo the model was trained on
	ShippedAccuracy      float64 `json:"shipped_accuracy"`   // on all boxes, seen or not
	ShippedOpenPrecision float64 `json:"shipped_open_precision"`
	ShippedOpenRecall    float64 `json:"shipped_open_recall"`
	CVFolds              int     `json:"cv_folds,omitempty"`
	CVRepeats            int     `json:"cv_repeats,omitempty"`
	CVAccuracy           float64 `json:"cv_accuracy,omitempty"`
	CVOpenPrecision      float64 `json:"cv_open_precision,omitempty"`
	CVOpenRecall         float64 `json:"cv_open_recall,omitempty"`
}

const (
	measureShipped = "shipped model"
	measureUnseen  = "shipped model, photos not seen in training"
	measureCV      = "cross-validated"
)

func evalCovers(ctx context.Context, args []string) error {
	return runEvalCovers(ctx, args, os.Stdout, os.Stderr)
}

func runEvalCovers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval covers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	labels := fs.String("labels", "../shared/data/manhole/labels.csv", "labels CSV: image,class,xmin,ymin,xmax,ymax")
	images := fs.String("images", "", "directory of the photos (default: images/ beside the labels)")
	manifest := fs.String("model", "models/cover-state/manifest.json", "the classifier's manifest")
	k := fs.Int("cv", 0, "also cross-validate with K folds grouped by photo (default: 5 when every photo is a training photo, else off)")
	repeats := fs.Int("cv-repeats", 5, "cross-validation rounds, each with its own shuffle")
	list := fs.Bool("list", false, "print every box with its P(open)")
	asJSON := fs.Bool("json", false, "print one JSON object as the last line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *images == "" {
		*images = filepath.Join(filepath.Dir(*labels), "images")
	}
	clf, err := coverclass.Load(*manifest)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "eval covers: decoding the photos in %s\n", *images)
	samples, err := coverclass.ReadLabels(*labels, *images)
	if err != nil {
		return err
	}
	trained := map[string]bool{}
	for _, id := range clf.Manifest.Training.Photos {
		trained[id] = true
	}
	seen := make([]bool, len(samples))
	res := coversResult{
		Model:       clf.Manifest.Name + " " + clf.Manifest.Version,
		ModelSHA256: clf.Manifest.SHA256,
		NBoxes:      len(samples),
	}
	for i, s := range samples {
		if seen[i] = trained[s.Photo]; seen[i] {
			res.NSeenInTraining++
		}
	}
	allSeen := res.NSeenInTraining == len(samples)
	if *k == 0 && allSeen {
		*k = 5
	}

	// The shipped model, timed per crop on decoded photos (decoding is the
	// camera pipeline's cost, not the classifier's).
	p := make([]float64, len(samples))
	if _, err := clf.Classify(samples[0].Image, samples[0].Box); err != nil { // warm up
		return err
	}
	start := time.Now()
	for i, s := range samples {
		if p[i], err = clf.Classify(s.Image, s.Box); err != nil {
			return fmt.Errorf("%s %v: %w", s.Group, s.Box, err)
		}
	}
	res.MsPerCrop = float64(time.Since(start).Microseconds()) / 1000 / float64(len(samples))
	var shipped, unseen coverclass.Confusion
	for i, s := range samples {
		shipped.Add(s.Open, p[i])
		if !seen[i] {
			unseen.Add(s.Open, p[i])
		}
	}
	res.ShippedAccuracy, res.ShippedOpenPrecision, res.ShippedOpenRecall = shipped.Accuracy(), shipped.OpenPrecision(), shipped.OpenRecall()
	res.Measure = measureShipped
	if res.NSeenInTraining > 0 {
		res.Measure = measureUnseen
	}
	res.N, res.Accuracy, res.OpenPrecision, res.OpenRecall = unseen.N(), unseen.Accuracy(), unseen.OpenPrecision(), unseen.OpenRecall()

	var cv coverclass.Confusion
	if *k > 0 {
		fmt.Fprintf(stderr, "eval covers: cross-validating, %d folds × %d rounds grouped by photo\n", *k, *repeats)
		rounds, err := coverclass.CrossValidate(ctx, samples, nil, *k, *repeats, coverclass.DefaultTrainOptions, func(done, total int) {
			if done == total || done%20 == 0 {
				fmt.Fprintf(stderr, "  features %d/%d\n", done, total)
			}
		})
		if err != nil {
			return err
		}
		for _, r := range rounds {
			for i, s := range samples {
				cv.Add(s.Open, r[i])
			}
		}
		res.CVFolds, res.CVRepeats = *k, *repeats
		res.CVAccuracy, res.CVOpenPrecision, res.CVOpenRecall = cv.Accuracy(), cv.OpenPrecision(), cv.OpenRecall()
		if allSeen {
			res.Measure = measureCV
			res.N, res.Accuracy, res.OpenPrecision, res.OpenRecall = len(samples), res.CVAccuracy, res.CVOpenPrecision, res.CVOpenRecall
		}
	}

	printCovers(stdout, samples, p, seen, *list, shipped, unseen, cv, res)
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	}
	return nil
}

func printCovers(w io.Writer, samples []coverclass.Sample, p []float64, seen []bool, list bool, shipped, unseen, cv coverclass.Confusion, res coversResult) {
	photos := map[string]bool{}
	nOpen := 0
	for _, s := range samples {
		photos[s.Group] = true
		if s.Open {
			nOpen++
		}
	}
	fmt.Fprintf(w, "eval covers: %d boxes (%d open, %d closed) in %d photos; model %s (sha256 %.12s…)\n",
		len(samples), nOpen, len(samples)-nOpen, len(photos), res.Model, res.ModelSHA256)
	fmt.Fprintf(w, "boxes whose photo the model was trained on: %d of %d\n\n", res.NSeenInTraining, len(samples))
	if list {
		fmt.Fprintf(w, "%-24s %-22s %-7s %7s  %-6s %s\n", "photo", "box", "truth", "P(open)", "call", "")
		for i, s := range samples {
			truth, call, mark := "closed", "closed", ""
			if s.Open {
				truth = "open"
			}
			if p[i] >= coverclass.Threshold {
				call = "open"
			}
			if call != truth {
				mark = "✗ "
			}
			if seen[i] {
				mark += "(training photo)"
			}
			fmt.Fprintf(w, "%-24s %-22v %-7s %7.3f  %-6s %s\n", s.Group, s.Box, truth, p[i], call, mark)
		}
		fmt.Fprintln(w)
	}
	title := "shipped model, all boxes"
	switch {
	case res.NSeenInTraining == len(samples):
		title += " — every photo is one it was trained on, so this figure is OPTIMISTIC; the cross-validated one below is the fair figure"
	case res.NSeenInTraining > 0:
		title += fmt.Sprintf(" — %d boxes are from its training photos, so this figure is optimistic", res.NSeenInTraining)
	}
	confusionTable(w, title, shipped)
	fmt.Fprintf(w, "  ms per crop %.3f (classification only, photos already decoded)\n\n", res.MsPerCrop)
	if res.NSeenInTraining > 0 && unseen.N() > 0 {
		confusionTable(w, "shipped model, boxes from photos it was not trained on", unseen)
		fmt.Fprintln(w)
	}
	if res.CVFolds > 0 {
		confusionTable(w, fmt.Sprintf("cross-validated: %d folds × %d rounds, grouped by photo (no photo in training and test at once), counts summed over rounds",
			res.CVFolds, res.CVRepeats), cv)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "headline (%s): n %d, accuracy %.3f, open precision %.3f, open recall %.3f\n",
		res.Measure, res.N, res.Accuracy, res.OpenPrecision, res.OpenRecall)
}

func confusionTable(w io.Writer, title string, c coverclass.Confusion) {
	fmt.Fprintln(w, title)
	fmt.Fprintf(w, "  %-8s %12s %14s\n", "truth", "called open", "called closed")
	fmt.Fprintf(w, "  %-8s %12d %14d\n", "open", c.TP, c.FN)
	fmt.Fprintf(w, "  %-8s %12d %14d\n", "closed", c.FP, c.TN)
	fmt.Fprintf(w, "  accuracy %.3f   open precision %.3f   open recall %.3f   (%d calls)\n",
		c.Accuracy(), c.OpenPrecision(), c.OpenRecall(), c.N())
}
