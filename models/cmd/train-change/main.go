// Command train-change trains the convolutional change network (package
// cloud/imagery/change, cnn.go) on labelled pairs laid out as A/, B/, label/
// and records the model file in models/imagery/catalog.json (sha256,
// training data, the exact command). Run it from the repository root:
//
//	go run ./models/cmd/train-change --pairs ../shared/data/change/levir --out models/imagery/change-cnn-levir.json
//
// Score it on the other set with
// "gridwatch-cloud imagery eval --pairs DIR --model FILE --record NAME".
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gridwatch/gridwatch/cloud/imagery"
	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "train-change:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := change.DefaultNetConfig()
	fs := flag.NewFlagSet("train-change", flag.ContinueOnError)
	pairs := fs.String("pairs", "", "comma-separated folders with A/, B/ and label/ to learn from")
	out := fs.String("out", "", "model file to write; its folder's catalog.json gets the sha256 and provenance")
	setDefault := fs.Bool("default", false, "make this the catalog's default model")
	note := fs.String("note", "", "note for the catalog entry")
	fs.IntVar(&cfg.Steps, "steps", cfg.Steps, "optimiser steps")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "crops per step")
	fs.IntVar(&cfg.Crop, "crop", cfg.Crop, "crop side in input pixels")
	fs.Float64Var(&cfg.LearnRate, "lr", cfg.LearnRate, "Adam learning rate (cosine-decayed)")
	fs.Float64Var(&cfg.ScaleMin, "scale-min", cfg.ScaleMin, "smallest resampling factor of a crop")
	fs.Float64Var(&cfg.ScaleMax, "scale-max", cfg.ScaleMax, "largest resampling factor of a crop")
	fs.Float64Var(&cfg.Colour, "colour", cfg.Colour, "strength of the per-date colour jitter")
	fs.Float64Var(&cfg.Negatives, "negatives", cfg.Negatives, "share of crops showing one date twice, labelled unchanged")
	fs.Float64Var(&cfg.Reverse, "reverse", cfg.Reverse, "share of crops with the dates swapped, labelled unchanged")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "goroutines (the result does not depend on it up to float rounding)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pairs == "" || *out == "" {
		return fmt.Errorf("--pairs and --out are required")
	}
	cfg.Workers = *workers
	var all []change.Pair
	var dirs []string
	for _, d := range strings.Split(*pairs, ",") {
		p, err := imagery.LoadTrainingPairs(d)
		if err != nil {
			return err
		}
		all = append(all, p...)
		dirs = append(dirs, filepath.Base(filepath.Clean(d)))
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "train-change: %6.1fs "+format+"\n", append([]any{time.Since(start).Seconds()}, a...)...)
	}
	cfg.Name = strings.TrimSuffix(filepath.Base(*out), filepath.Ext(*out))
	m, err := change.TrainNet(all, cfg, logf)
	if err != nil {
		return err
	}
	sum, err := m.Save(*out)
	if err != nil {
		return err
	}
	cmd := "go run ./models/cmd/train-change " + strings.Join(args, " ")
	e := imagery.ManifestEntry{Name: m.Name, Version: m.Version, SHA256: sum,
		TrainingData: strings.Join(dirs, "+"), TrainedOn: m.TrainedOn, TrainCommand: cmd, Note: *note}
	if err := imagery.Record(*out, e, *setDefault); err != nil {
		return err
	}
	logf("wrote %s (sha256 %s)", *out, sum)
	return nil
}
