package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"text/tabwriter"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/occupancy/background"
	"github.com/gridwatch/gridwatch/edge/occupancy/cdnet"
)

func init() { evals["cdnet"] = evalCDnet }

// evalCDnet scores the background model that road-occupation detection
// stands on against a CDnet 2014 sequence (e.g. ../shared/data/cdnet-highway).
func evalCDnet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("eval cdnet", flag.ContinueOnError)
	dir := fs.String("dir", "", "CDnet sequence directory (input/, groundtruth/, ROI.bmp, temporalROI.txt)")
	asJSON := fs.Bool("json", false, "print one JSON object as the last line")
	from := fs.Int("from", 0, "score from this frame on (default: start of the temporal ROI)")
	to := fs.Int("to", 0, "stop after this frame (default: end of the temporal ROI)")
	name := fs.String("model", "subsense", "subsense (edge/occupancy/background) or mog2 (OpenCV's, the baseline)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("eval cdnet: --dir is required")
	}
	seq, err := cdnet.Open(*dir)
	if err != nil {
		return err
	}
	var model cdnet.Segmenter
	switch *name {
	case "subsense":
		model = background.New(seq.W, seq.H, background.Options{})
	case "mog2":
		m := newMOG2(seq.W, seq.H)
		defer m.Close()
		model = m
	default:
		return fmt.Errorf("eval cdnet: --model %q is not subsense or mog2", *name)
	}
	res, err := cdnet.Run(ctx, seq, model, cdnet.RunOptions{
		From: *from, To: *to,
		Progress: func(i, n int) {
			if i%100 == 0 || i == n {
				fmt.Fprintf(os.Stderr, "cdnet: frame %d/%d\n", i, n)
			}
		},
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "sequence\t%s (%dx%d)\n", *dir, seq.W, seq.H)
	fmt.Fprintf(tw, "model\t%s\n", *name)
	fmt.Fprintf(tw, "frames processed / scored\t%d / %d (temporal ROI %d-%d)\n", res.Processed, res.Scored, seq.First, seq.Last)
	fmt.Fprintf(tw, "TP / FP / FN / TN\t%d / %d / %d / %d\n", res.TP, res.FP, res.FN, res.TN)
	fmt.Fprintf(tw, "precision\t%.4f\n", res.Precision())
	fmt.Fprintf(tw, "recall\t%.4f\n", res.Recall())
	fmt.Fprintf(tw, "F-measure\t%.4f\n", res.F())
	fmt.Fprintf(tw, "ms per frame\t%.2f (model only, wall clock, %d cores)\n", res.MsPerFrame(), runtime.GOMAXPROCS(0))
	if err := tw.Flush(); err != nil {
		return err
	}
	if !*asJSON {
		return nil
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"benchmark":    "cdnet",
		"dir":          *dir,
		"model":        *name,
		"precision":    res.Precision(),
		"recall":       res.Recall(),
		"f_measure":    res.F(),
		"frames":       res.Scored,
		"processed":    res.Processed,
		"ms_per_frame": res.MsPerFrame(),
		"cores":        runtime.GOMAXPROCS(0),
	})
}

// mog2 is OpenCV's Gaussian-mixture background subtractor with its default
// settings (history 500, variance threshold 16, shadows detected and counted
// as background): the baseline the model must beat.
type mog2 struct {
	w, h int
	bs   gocv.BackgroundSubtractorMOG2
	dst  gocv.Mat
}

func newMOG2(w, h int) *mog2 {
	return &mog2{w: w, h: h, bs: gocv.NewBackgroundSubtractorMOG2(), dst: gocv.NewMat()}
}

func (m *mog2) Apply(frame, fg []byte) {
	src, err := gocv.NewMatFromBytes(m.h, m.w, gocv.MatTypeCV8UC3, frame)
	if err != nil {
		panic(err) // the size is checked by cdnet.Open
	}
	defer src.Close()
	m.bs.Apply(src, &m.dst)
	for i, v := range m.dst.ToBytes() {
		fg[i] = 0
		if v == 255 { // 127 marks shadow
			fg[i] = 255
		}
	}
}

func (m *mog2) Close() {
	m.bs.Close()
	m.dst.Close()
}
