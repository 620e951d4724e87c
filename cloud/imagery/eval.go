package imagery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

// PairNames lists the pairs of a folder laid out as A/ (before), B/ (after)
// and, when withLabels, label/ (255 = changed), matched by file name.
func PairNames(dir string, withLabels bool) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "A"))
	if err != nil {
		return nil, fmt.Errorf("pairs: %w (want %s/A, %s/B and %s/label)", err, dir, dir, dir)
	}
	var names, missing []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		n := e.Name()
		need := []string{filepath.Join(dir, "B", n)}
		if withLabels {
			need = append(need, filepath.Join(dir, "label", n))
		}
		ok := true
		for _, p := range need {
			if _, err := os.Stat(p); err != nil {
				missing = append(missing, p)
				ok = false
			}
		}
		if ok {
			names = append(names, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("pairs: %d files missing, first %s", len(missing), missing[0])
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("pairs: no images in %s/A", dir)
	}
	sort.Strings(names)
	return names, nil
}

// LoadPair reads one named pair; the label only when withLabel.
func LoadPair(dir, name string, withLabel bool) (change.Pair, error) {
	p := change.Pair{Name: name}
	var err error
	if p.A, err = ReadImage(filepath.Join(dir, "A", name)); err != nil {
		return p, err
	}
	if p.B, err = ReadImage(filepath.Join(dir, "B", name)); err != nil {
		return p, err
	}
	if p.A.W != p.B.W || p.A.H != p.B.H {
		return p, fmt.Errorf("pair %s: before is %dx%d, after %dx%d", name, p.A.W, p.A.H, p.B.W, p.B.H)
	}
	if withLabel {
		if p.Label, err = ReadMask(filepath.Join(dir, "label", name)); err != nil {
			return p, err
		}
		if p.Label.W != p.A.W || p.Label.H != p.A.H {
			return p, fmt.Errorf("pair %s: label is %dx%d, images %dx%d", name, p.Label.W, p.Label.H, p.A.W, p.A.H)
		}
	}
	return p, nil
}

// Prepare co-registers b onto a and matches b's radiometry to a's: the
// input the boosted trees see (networks get PrepareFor's co-registration
// only).
func Prepare(a, b *change.Image) (*change.Image, Shift) {
	b, s := Register(a, b, DefaultRegister)
	return change.MatchStats(b, a), s
}

// PairResult is the score of one pair.
type PairResult struct {
	Name   string
	Conf   change.Confusion
	Shift  Shift
	Millis float64 // co-registration through cleaned mask, excluding decoding
	CPUMs  float64 // CPU time of the same work (all threads)
	Pixels int     // pixels of both dates
}

// EvalResult pools the pairs' pixels.
type EvalResult struct {
	Pairs  []PairResult
	Total  change.Confusion
	Millis float64
	CPUMs  float64
	Pixels int
}

// CPUMsPerMegapixel is the CPU time per megapixel of both dates: unlike wall
// time it does not grow when other processes share the machine.
func (r *EvalResult) CPUMsPerMegapixel() float64 {
	if r.Pixels == 0 {
		return 0
	}
	return r.CPUMs / (float64(r.Pixels) / 1e6)
}

// cpuTime is the CPU time (user+system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// PrepareFor is Prepare for model m: co-registration always, the
// radiometric matching only if the model wants it (MatchesRadiometry).
func PrepareFor(m *change.Model, a, b *change.Image) (*change.Image, Shift) {
	if m.MatchesRadiometry() {
		return Prepare(a, b)
	}
	return Register(a, b, DefaultRegister)
}

// MsPerMegapixel is the processing time per megapixel of both dates.
func (r *EvalResult) MsPerMegapixel() float64 {
	if r.Pixels == 0 {
		return 0
	}
	return r.Millis / (float64(r.Pixels) / 1e6)
}

// Eval runs the model on every labelled pair of dir and scores the changed
// class over all pixels. Labels are read only for scoring, after detection.
func Eval(ctx context.Context, m *change.Model, dir string, opt EvalOptions, progress func(done, total int, r PairResult)) (*EvalResult, error) {
	names, err := PairNames(dir, true)
	if err != nil {
		return nil, err
	}
	res := &EvalResult{}
	for i, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := LoadPair(dir, n, false)
		if err != nil {
			return nil, err
		}
		t0, c0 := time.Now(), cpuTime()
		b, shift := PrepareFor(m, p.A, p.B)
		prob, mask, err := m.Detect(p.A, b)
		if err != nil {
			return nil, fmt.Errorf("pair %s: %w", n, err)
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		cpu := float64((cpuTime() - c0).Microseconds()) / 1000
		if opt.Dir != "" {
			if err := writeMaps(opt.Dir, n, prob, mask); err != nil {
				return nil, err
			}
		}
		label, err := ReadMask(filepath.Join(dir, "label", n))
		if err != nil {
			return nil, err
		}
		pr := PairResult{Name: n, Shift: shift, Millis: ms, CPUMs: cpu, Pixels: 2 * p.A.W * p.A.H}
		if err := pr.Conf.Add(mask, label); err != nil {
			return nil, fmt.Errorf("pair %s: %w", n, err)
		}
		res.Pairs = append(res.Pairs, pr)
		res.Total.Merge(pr.Conf)
		res.Millis += ms
		res.CPUMs += cpu
		res.Pixels += pr.Pixels
		if progress != nil {
			progress(i+1, len(names), pr)
		}
	}
	return res, nil
}

// LoadTrainingPairs reads all labelled pairs of dir, co-registered and with
// the after date's radiometry matched to the before date's (Prepare). The
// network's training jitters each date's colours independently after that
// and standardises each crop over itself.
func LoadTrainingPairs(dir string) ([]change.Pair, error) {
	names, err := PairNames(dir, true)
	if err != nil {
		return nil, err
	}
	var out []change.Pair
	for _, n := range names {
		p, err := LoadPair(dir, n, true)
		if err != nil {
			return nil, err
		}
		p.B, _ = Prepare(p.A, p.B)
		out = append(out, p)
	}
	return out, nil
}

// EvalOptions are optional outputs of Eval.
type EvalOptions struct {
	// Dir, if set, receives NAME.png per pair: the predicted mask (white),
	// and NAME.prob.png, the probability map.
	Dir string
}
