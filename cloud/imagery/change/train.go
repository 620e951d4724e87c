package change

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
)

// Pair is one labelled bi-temporal pair used for training or scoring.
type Pair struct {
	Name  string
	A, B  *Image
	Label *Mask
}

// TrainConfig says how to build a Model from labelled pairs.
type TrainConfig struct {
	Name, Version  string
	Scales         []int
	Stride         int
	FeatureSet     int // 0 or 1 (FeatureNames)
	SamplesPerPair int
	Folds          int // pair-wise folds used to choose the post-processing
	Params         TrainParams
}

// DefaultTrainConfig is the recipe of the shipped models.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		Name: "change-gbdt", Version: "1",
		Scales: []int{1, 3, 7, 15, 31}, Stride: 4,
		SamplesPerPair: 8000, Folds: 3, Params: DefaultTrainParams(),
	}
}

type sampled struct {
	x     [][]float32
	y     []uint8
	group []int
}

func sample(pairs []Pair, cfg TrainConfig, rng *rand.Rand) (*sampled, []*Featurizer, error) {
	s := &sampled{}
	feats := make([]*Featurizer, len(pairs))
	for gi, p := range pairs {
		f, err := NewFeaturizer(p.A, p.B, cfg.Scales, cfg.FeatureSet)
		if err != nil {
			return nil, nil, fmt.Errorf("pair %s: %w", p.Name, err)
		}
		if p.Label == nil || p.Label.W != p.A.W || p.Label.H != p.A.H {
			return nil, nil, fmt.Errorf("pair %s: label missing or of another size", p.Name)
		}
		feats[gi] = f
		n := p.A.W * p.A.H
		k := min(cfg.SamplesPerPair, n)
		for _, i := range rng.Perm(n)[:k] {
			v := make([]float32, f.NumFeatures())
			f.At(i%p.A.W, i/p.A.W, v)
			s.x = append(s.x, v)
			s.y = append(s.y, p.Label.Pix[i])
			s.group = append(s.group, gi)
		}
	}
	return s, feats, nil
}

// TrainModel fits the boosted trees on pixels sampled from pairs and chooses
// the post-processing on out-of-fold predictions (pairs split into folds), so
// the threshold is not fitted to pixels the trees have memorised. logf, if not
// nil, receives progress lines.
func TrainModel(pairs []Pair, cfg TrainConfig, logf func(format string, args ...any)) (*Model, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(pairs) < 2 {
		return nil, fmt.Errorf("train: need at least 2 labelled pairs, have %d", len(pairs))
	}
	rng := rand.New(rand.NewPCG(cfg.Params.Seed, 7))
	s, feats, err := sample(pairs, cfg, rng)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	logf("sampled %d pixels from %d pairs, %d features", len(s.y), len(pairs), len(s.x[0]))
	m := &Model{Name: cfg.Name, Version: cfg.Version, Scales: cfg.Scales, Features: FeatureNames(cfg.Scales, cfg.FeatureSet), FeatureSet: cfg.FeatureSet,
		Stride: cfg.Stride, Train: cfg.Params}
	for _, p := range pairs {
		m.TrainedOn = append(m.TrainedOn, p.Name)
	}

	cfg.Params.names = m.Features
	// Folds go by original pair: a pair's rescaled copies ("NAME@0.5")
	// share its fold, so no fold is scored on pixels it learnt from.
	fold := make([]int, len(pairs))
	base := map[string]int{}
	for gi, p := range pairs {
		b, _, _ := strings.Cut(p.Name, "@")
		if _, ok := base[b]; !ok {
			base[b] = len(base)
		}
		fold[gi] = base[b]
	}
	groups := len(base)
	if groups < 2 { // pairs without distinct names: each is its own
		for gi := range fold {
			fold[gi] = gi
		}
		groups = len(pairs)
	}
	folds := min(max(cfg.Folds, 2), groups)
	// Every pair gets probabilities from trees trained on the other folds,
	// so the post-processing is chosen on pixels the trees never saw.
	oof := make([][]float32, len(pairs))
	for k := 0; k < folds; k++ {
		var xs [][]float32
		var ys []uint8
		for i, g := range s.group {
			if fold[g]%folds != k {
				xs = append(xs, s.x[i])
				ys = append(ys, s.y[i])
			}
		}
		e := Train(xs, ys, cfg.Params, nil)
		for gi := range pairs {
			if fold[gi]%folds == k {
				oof[gi] = gridProb(feats[gi], e, cfg.Stride, runtime.GOMAXPROCS(0))
			}
		}
		logf("fold %d/%d trained on %d pixels", k+1, folds, len(ys))
	}
	m.Post = choosePost(pairs, oof)
	var c Confusion
	for gi, p := range pairs {
		c.Add(m.Post.Apply(oof[gi], p.A.W, p.A.H), p.Label)
	}
	logf("post-processing %+v: out-of-fold F1 %.3f (P %.3f R %.3f)", m.Post, c.F1(), c.Precision(), c.Recall())
	m.OutOfFold = OutOfFold{Pairs: len(pairs), Precision: c.Precision(), Recall: c.Recall(), F1: c.F1(), IoU: c.IoU()}

	m.Ensemble = *Train(s.x, s.y, cfg.Params, func(r int, loss float64) {
		if (r+1)%50 == 0 {
			logf("round %d/%d loss %.4f", r+1, cfg.Params.Rounds, loss)
		}
	})
	return m, nil
}

// choosePost picks the post-processing that maximises pooled F1 over the
// out-of-fold probability maps: first smoothing and threshold, then
// morphology and area limits, then the threshold again.
func choosePost(pairs []Pair, prob [][]float32) PostParams {
	score := func(p PostParams) float64 {
		var c Confusion
		for i, pr := range pairs {
			c.Add(p.Apply(prob[i], pr.A.W, pr.A.H), pr.Label)
		}
		return c.F1()
	}
	best, bestF := PostParams{Threshold: 0.5}, -1.0
	for _, sm := range []int{0, 2, 4, 8, 16} {
		// Pooled F1 for every threshold from a histogram of smoothed probabilities.
		const nb = 100
		var pos, neg [nb + 1]int64
		var totalPos int64
		for i, pr := range pairs {
			sp := BoxMean(prob[i], pr.A.W, pr.A.H, sm)
			for j, v := range sp {
				b := min(int(v*nb), nb)
				if pr.Label.Pix[j] != 0 {
					pos[b]++
					totalPos++
				} else {
					neg[b]++
				}
			}
		}
		var tp, fp int64
		for b := nb; b >= 1; b-- { // predict changed for bins ≥ b
			tp += pos[b]
			fp += neg[b]
			f := float64(2*tp) / float64(2*tp+fp+(totalPos-tp))
			if f > bestF {
				bestF = f
				best = PostParams{Smooth: sm, Threshold: float32(b) / nb}
			}
		}
	}
	base := best
	bestF = score(best)
	for _, op := range []int{0, 1, 2} {
		for _, cl := range []int{0, 2, 4} {
			for _, ma := range []int{0, 16, 64} {
				for _, mh := range []int{0, 64, 256, 1024} {
					p := base
					p.Open, p.Close, p.MinArea, p.MaxHole = op, cl, ma, mh
					if f := score(p); f > bestF {
						best, bestF = p, f
					}
				}
			}
		}
	}
	ts := []float32{}
	for d := float32(-0.1); d <= 0.1001; d += 0.02 {
		ts = append(ts, best.Threshold+d)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	cur := best
	for _, t := range ts {
		if t <= 0 || t >= 1 {
			continue
		}
		p := cur
		p.Threshold = t
		if f := score(p); f > bestF {
			best, bestF = p, f
		}
	}
	return best
}
