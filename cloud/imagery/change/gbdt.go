package change

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Tree is one complete binary tree of the boosted ensemble, stored in heap
// order: internal node i tests x[Feat[i]] <= Thr[i] (left) and has children
// 2i+1 and 2i+2; the 2^Depth leaves follow the 2^Depth-1 internal nodes.
type Tree struct {
	Feat []int32   `json:"feat"`
	Thr  []float32 `json:"thr"`
	Leaf []float32 `json:"leaf"`
}

// Ensemble is a gradient-boosted tree classifier with logistic loss.
type Ensemble struct {
	Depth int     `json:"depth"`
	Base  float32 `json:"base"`
	Trees []Tree  `json:"trees"`
}

// Margin returns the raw score (log-odds) of feature vector x.
func (e *Ensemble) Margin(x []float32) float32 {
	s := e.Base
	inner := len(e.Trees[0].Feat)
	for t := range e.Trees {
		tr := &e.Trees[t]
		n := 0
		for d := 0; d < e.Depth; d++ {
			if x[tr.Feat[n]] <= tr.Thr[n] {
				n = 2*n + 1
			} else {
				n = 2*n + 2
			}
		}
		s += tr.Leaf[n-inner]
	}
	return s
}

// Prob returns the probability of the positive class for x.
func (e *Ensemble) Prob(x []float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(e.Margin(x)))))
}

// TrainParams are the boosting hyper-parameters.
type TrainParams struct {
	Rounds     int     `json:"rounds"`
	Depth      int     `json:"depth"`
	LearnRate  float64 `json:"learn_rate"`
	Lambda     float64 `json:"lambda"`
	MinHessian float64 `json:"min_hessian"`
	RowSample  float64 `json:"row_sample"`
	ColSample  float64 `json:"col_sample"`
	Bins       int     `json:"bins"`
	PosWeight  float64 `json:"pos_weight"` // weight of positive samples (0 = balance the classes)
	Seed       uint64  `json:"seed"`
	// Exclude lists feature names (without the "@rN" scale) the trees may
	// not use.
	Exclude []string `json:"exclude,omitempty"`
	// names of the columns, set by TrainModel to resolve Exclude.
	names []string
}

// DefaultTrainParams are the settings the shipped models were trained with.
func DefaultTrainParams() TrainParams {
	return TrainParams{Rounds: 200, Depth: 4, LearnRate: 0.1, Lambda: 1, MinHessian: 5,
		RowSample: 0.5, ColSample: 0.5, Bins: 64, PosWeight: 0, Seed: 1}
}

// Train fits an ensemble to rows x (all the same length) with labels y (0/1).
// progress, if not nil, is called after every round.
func Train(x [][]float32, y []uint8, p TrainParams, progress func(round int, loss float64)) *Ensemble {
	n, nf := len(x), len(x[0])
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))

	// Quantile bins per feature.
	cuts := make([][]float32, nf)
	bins := make([][]uint8, nf)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for f := 0; f < nf; f++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(f int) {
			defer func() { <-sem; wg.Done() }()
			vals := make([]float32, n)
			for i := range x {
				vals[i] = x[i][f]
			}
			sort.Slice(vals, func(a, b int) bool { return vals[a] < vals[b] })
			var c []float32
			for k := 1; k < p.Bins; k++ {
				v := vals[k*n/p.Bins]
				if len(c) == 0 || v > c[len(c)-1] {
					c = append(c, v)
				}
			}
			if len(c) > 0 && c[len(c)-1] >= vals[n-1] {
				c = c[:len(c)-1]
			}
			cuts[f] = c
			b := make([]uint8, n)
			for i := range x {
				b[i] = uint8(sort.Search(len(c), func(k int) bool { return c[k] >= x[i][f] }))
			}
			bins[f] = b
		}(f)
	}
	wg.Wait()

	excluded := make([]bool, nf)
	for f := range excluded {
		if f < len(p.names) {
			base, _, _ := strings.Cut(p.names[f], "@")
			excluded[f] = slices.Contains(p.Exclude, base)
		}
	}

	// Class weights.
	var npos float64
	for _, v := range y {
		npos += float64(v)
	}
	wpos := p.PosWeight
	if wpos == 0 {
		wpos = (float64(n) - npos) / math.Max(npos, 1)
	}
	w := make([]float64, n)
	var sw, swy float64
	for i, v := range y {
		w[i] = 1
		if v == 1 {
			w[i] = wpos
		}
		sw += w[i]
		swy += w[i] * float64(v)
	}
	prior := swy / sw
	e := &Ensemble{Depth: p.Depth, Base: float32(math.Log(prior / (1 - prior)))}
	margin := make([]float64, n)
	for i := range margin {
		margin[i] = float64(e.Base)
	}
	g := make([]float64, n)
	h := make([]float64, n)
	node := make([]int32, n)
	inner := 1<<p.Depth - 1
	for round := 0; round < p.Rounds; round++ {
		var loss float64
		for i := range x {
			pr := 1 / (1 + math.Exp(-margin[i]))
			g[i] = w[i] * (pr - float64(y[i]))
			h[i] = w[i] * math.Max(pr*(1-pr), 1e-6)
			if y[i] == 1 {
				loss -= w[i] * math.Log(math.Max(pr, 1e-12))
			} else {
				loss -= w[i] * math.Log(math.Max(1-pr, 1e-12))
			}
		}
		var rows []int32
		for i := 0; i < n; i++ {
			if rng.Float64() < p.RowSample {
				rows = append(rows, int32(i))
				node[i] = 0
			}
		}
		var cols []int
		for f := 0; f < nf; f++ {
			if rng.Float64() < p.ColSample && !excluded[f] {
				cols = append(cols, f)
			}
		}
		for len(cols) == 0 {
			if f := rng.IntN(nf); !excluded[f] {
				cols = append(cols, f)
			}
		}
		tr := Tree{Feat: make([]int32, inner), Thr: make([]float32, inner), Leaf: make([]float32, inner+1)}
		for d := 0; d < p.Depth; d++ {
			first, count := 1<<d-1, 1<<d
			type best struct {
				gain float64
				f, b int
			}
			bests := make([][]best, len(cols)) // per column, per node
			var wg sync.WaitGroup
			next := make(chan int, len(cols))
			for ci := range cols {
				next <- ci
			}
			close(next)
			for wkr := 0; wkr < runtime.GOMAXPROCS(0); wkr++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					nb := p.Bins
					hg := make([]float64, count*nb)
					hh := make([]float64, count*nb)
					for ci := range next {
						f := cols[ci]
						for k := range hg {
							hg[k], hh[k] = 0, 0
						}
						bf := bins[f]
						for _, i := range rows {
							k := (int(node[i])-first)*nb + int(bf[i])
							hg[k] += g[i]
							hh[k] += h[i]
						}
						res := make([]best, count)
						for nd := 0; nd < count; nd++ {
							var G, H float64
							for b := 0; b < nb; b++ {
								G += hg[nd*nb+b]
								H += hh[nd*nb+b]
							}
							parent := G * G / (H + p.Lambda)
							var gl, hl float64
							res[nd] = best{gain: 0, f: -1}
							for b := 0; b < len(cuts[f]); b++ {
								gl += hg[nd*nb+b]
								hl += hh[nd*nb+b]
								gr, hr := G-gl, H-hl
								if hl < p.MinHessian || hr < p.MinHessian {
									continue
								}
								gain := gl*gl/(hl+p.Lambda) + gr*gr/(hr+p.Lambda) - parent
								if gain > res[nd].gain {
									res[nd] = best{gain, f, b}
								}
							}
						}
						bests[ci] = res
					}
				}()
			}
			wg.Wait()
			for nd := 0; nd < count; nd++ {
				bb := best{f: -1}
				for ci := range cols {
					if r := bests[ci][nd]; r.f >= 0 && r.gain > bb.gain {
						bb = r
					}
				}
				id := first + nd
				if bb.f < 0 {
					tr.Feat[id], tr.Thr[id] = 0, math.MaxFloat32
					continue
				}
				tr.Feat[id], tr.Thr[id] = int32(bb.f), cuts[bb.f][bb.b]
			}
			// Route the sampled rows one level down.
			for _, i := range rows {
				nd := node[i]
				f := tr.Feat[nd]
				if x[i][f] <= tr.Thr[nd] {
					node[i] = 2*nd + 1
				} else {
					node[i] = 2*nd + 2
				}
			}
		}
		leafG := make([]float64, inner+1)
		leafH := make([]float64, inner+1)
		for _, i := range rows {
			l := int(node[i]) - inner
			leafG[l] += g[i]
			leafH[l] += h[i]
		}
		for l := range tr.Leaf {
			tr.Leaf[l] = float32(-p.LearnRate * leafG[l] / (leafH[l] + p.Lambda))
		}
		e.Trees = append(e.Trees, tr)
		one := Ensemble{Depth: p.Depth, Trees: []Tree{tr}}
		for i := range x {
			margin[i] += float64(one.Margin(x[i]))
		}
		if progress != nil {
			progress(round, loss/sw)
		}
	}
	return e
}
