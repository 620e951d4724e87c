package coverclass

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// Sample is one labelled cover crop.
type Sample struct {
	Image image.Image
	Box   image.Rectangle
	Open  bool
	// Group names where the crop came from (a photo, a simulated camera);
	// cross-validation never puts crops of one group on both sides.
	Group string
	// Weight scales the sample's say in training; 0 means 1.
	Weight float64
	// Photo is PhotoID of the photo file's bytes, when read from a file.
	Photo string
}

// TrainOptions control training. The zero value is not useful; start from
// DefaultTrainOptions.
type TrainOptions struct {
	// Augment is how many variants of each sample are trained on: the
	// original plus Augment-1 with the box shifted and scaled and the
	// exposure changed, as a different annotator or camera would give.
	Augment int
	// Jitter is the largest box shift, as a share of the box size; the box
	// is also scaled by up to ±Jitter in each direction.
	Jitter float64
	// L2 is the ridge penalty on the standardised weights.
	L2   float64
	Seed uint64
}

// DefaultTrainOptions is what the shipped model is trained with.
var DefaultTrainOptions = TrainOptions{Augment: 12, Jitter: 0.10, L2: 10, Seed: 1}

// row is one feature vector with its label and weight.
type row struct {
	x      []float64
	y      float64
	w      float64
	sample int
}

// Featurize computes the training rows of samples: Augment variants each,
// weighted so that every sample counts Weight in total. Work is spread over
// the CPUs; progress (if not nil) is called after each sample.
func featurize(ctx context.Context, samples []Sample, opt TrainOptions, progress func(done, total int)) ([]row, error) {
	aug := max(opt.Augment, 1)
	rows := make([]row, len(samples)*aug)
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newScratch()
			for i := range next {
				smp := samples[i]
				src := sourceOf(smp.Image)
				rng := rand.New(rand.NewPCG(opt.Seed, uint64(i)))
				w := smp.Weight
				if w == 0 {
					w = 1
				}
				for a := range aug {
					box, adj := smp.Box, adjust{}
					if a > 0 {
						box, adj = perturb(rng, smp.Box, opt.Jitter)
					}
					x := make([]float64, numFeatures)
					samplePatch(src, box, adj, &s.p)
					s.features(x)
					y := 0.0
					if smp.Open {
						y = 1
					}
					rows[i*aug+a] = row{x: x, y: y, w: w / float64(aug), sample: i}
				}
				if progress != nil {
					mu.Lock()
					done++
					progress(done, len(samples))
					mu.Unlock()
				}
			}
		}()
	}
	var err error
feed:
	for i := range samples {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	return rows, err
}

// perturb returns a shifted and scaled box and an exposure change.
func perturb(rng *rand.Rand, b image.Rectangle, j float64) (image.Rectangle, adjust) {
	u := func() float64 { return 2*rng.Float64() - 1 }
	w, h := float64(b.Dx()), float64(b.Dy())
	cx := float64(b.Min.X+b.Max.X)/2 + u()*j*w
	cy := float64(b.Min.Y+b.Max.Y)/2 + u()*j*h
	nw, nh := max(w*(1+u()*j), 2), max(h*(1+u()*j), 2)
	box := image.Rect(
		int(math.Round(cx-nw/2)), int(math.Round(cy-nh/2)),
		int(math.Round(cx+nw/2)), int(math.Round(cy+nh/2)))
	adj := adjust{
		gain:  math.Exp(0.35 * u()), // ×0.7 … ×1.4
		gamma: math.Exp(0.25 * u()), // 0.78 … 1.28
		flip:  rng.IntN(2) == 1,
	}
	return box, adj
}

// Train fits a model on samples.
func Train(ctx context.Context, samples []Sample, opt TrainOptions, progress func(done, total int)) (*Model, error) {
	if len(samples) == 0 {
		return nil, errors.New("coverclass: train: no samples")
	}
	rows, err := featurize(ctx, samples, opt, progress)
	if err != nil {
		return nil, err
	}
	return fit(rows, opt.L2)
}

// fit standardises the features and solves the L2-penalised logistic
// regression by Newton's method (the problem is small and convex, so this
// converges in a handful of exact steps and needs no learning rate).
func fit(rows []row, l2 float64) (*Model, error) {
	d := numFeatures
	m := &Model{Format: Format, Features: slices.Clone(featureNames),
		Mean: make([]float64, d), Scale: make([]float64, d), Weight: make([]float64, d)}
	var wsum float64
	for _, r := range rows {
		wsum += r.w
		for i, v := range r.x {
			m.Mean[i] += r.w * v
		}
	}
	if wsum <= 0 {
		return nil, errors.New("coverclass: train: zero total weight")
	}
	for i := range m.Mean {
		m.Mean[i] /= wsum
	}
	for _, r := range rows {
		for i, v := range r.x {
			dv := v - m.Mean[i]
			m.Scale[i] += r.w * dv * dv
		}
	}
	for i := range m.Scale {
		m.Scale[i] = math.Sqrt(m.Scale[i]/wsum) + 1e-6
	}
	z := make([][]float64, len(rows))
	for k, r := range rows {
		z[k] = make([]float64, d+1)
		for i, v := range r.x {
			z[k][i] = (v - m.Mean[i]) / m.Scale[i]
		}
		z[k][d] = 1
	}
	beta := make([]float64, d+1)
	H := make([][]float64, d+1)
	for i := range H {
		H[i] = make([]float64, d+1)
	}
	g := make([]float64, d+1)
	for iter := 0; iter < 50; iter++ {
		for i := range H {
			clear(H[i])
		}
		clear(g)
		for k, r := range rows {
			zk := z[k]
			s := 0.0
			for i, v := range zk {
				s += beta[i] * v
			}
			p := sigmoid(s)
			e := r.w * (p - r.y)
			q := r.w * max(p*(1-p), 1e-9)
			for i, vi := range zk {
				g[i] += e * vi
				qi := q * vi
				row := H[i]
				for j := 0; j <= i; j++ {
					row[j] += qi * zk[j]
				}
			}
		}
		for i := 0; i < d; i++ { // the bias is not penalised
			g[i] += l2 * beta[i]
			H[i][i] += l2
		}
		for i := range H {
			for j := 0; j < i; j++ {
				H[j][i] = H[i][j]
			}
		}
		step, err := solve(H, g)
		if err != nil {
			return nil, fmt.Errorf("coverclass: train: %w", err)
		}
		maxStep := 0.0
		for i := range beta {
			beta[i] -= step[i]
			maxStep = max(maxStep, math.Abs(step[i]))
		}
		if maxStep < 1e-9 {
			break
		}
	}
	copy(m.Weight, beta[:d])
	m.Bias = beta[d]
	// Round through the file format so that a model in memory scores
	// exactly as the same model loaded from disk.
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return ParseModel(b)
}

// solve solves A x = b for symmetric positive definite A by Cholesky.
func solve(A [][]float64, b []float64) ([]float64, error) {
	n := len(b)
	L := make([][]float64, n)
	for i := range L {
		L[i] = make([]float64, n)
		for j := 0; j <= i; j++ {
			s := A[i][j]
			for k := 0; k < j; k++ {
				s -= L[i][k] * L[j][k]
			}
			if i == j {
				if s <= 0 {
					return nil, errors.New("hessian is not positive definite")
				}
				L[i][i] = math.Sqrt(s)
			} else {
				L[i][j] = s / L[j][j]
			}
		}
	}
	y := make([]float64, n)
	for i := range n {
		s := b[i]
		for k := 0; k < i; k++ {
			s -= L[i][k] * y[k]
		}
		y[i] = s / L[i][i]
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := y[i]
		for k := i + 1; k < n; k++ {
			s -= L[k][i] * x[k]
		}
		x[i] = s / L[i][i]
	}
	return x, nil
}

func (o TrainOptions) String() string {
	return fmt.Sprintf("augment=%d jitter=%g l2=%g seed=%d", o.Augment, o.Jitter, o.L2, o.Seed)
}
