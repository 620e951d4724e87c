package coverclass

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Folds assigns each sample to one of k folds so that all crops of a group
// share a fold, groups are shuffled by seed, and open and closed groups are
// spread evenly. It returns the fold of each sample.
func Folds(samples []Sample, k int, seed uint64) ([]int, error) {
	groups := map[string][2]int{} // group → (open, closed) counts
	for _, s := range samples {
		c := groups[s.Group]
		if s.Open {
			c[0]++
		} else {
			c[1]++
		}
		groups[s.Group] = c
	}
	if k < 2 || k > len(groups) {
		return nil, fmt.Errorf("coverclass: %d folds for %d groups", k, len(groups))
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	rng := rand.New(rand.NewPCG(seed, 0xf01d))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	// Mostly-open groups first, then mostly-closed, dealt round-robin.
	slices.SortStableFunc(names, func(a, b string) int {
		oa, ob := groups[a][0] > groups[a][1], groups[b][0] > groups[b][1]
		switch {
		case oa == ob:
			return 0
		case oa:
			return -1
		}
		return 1
	})
	fold := map[string]int{}
	for i, g := range names {
		fold[g] = i % k
	}
	out := make([]int, len(samples))
	for i, s := range samples {
		out[i] = fold[s.Group]
	}
	return out, nil
}

// CrossValidate runs repeats rounds of k-fold cross-validation grouped by
// Sample.Group (round r shuffles the groups with seed opt.Seed+r). Each
// round trains k models, each without one fold of samples and always with
// extra (which is never tested on), and gives every sample the P(open) of
// the model that did not see its group: out[r][i].
func CrossValidate(ctx context.Context, samples, extra []Sample, k, repeats int, opt TrainOptions, progress func(done, total int)) ([][]float64, error) {
	if len(samples) == 0 {
		return nil, errors.New("coverclass: cross-validate: no samples")
	}
	folds := make([][]int, max(repeats, 1))
	for r := range folds {
		f, err := Folds(samples, k, opt.Seed+uint64(r))
		if err != nil {
			return nil, err
		}
		folds[r] = f
	}
	all := append(slices.Clip(samples), extra...)
	rows, err := featurize(ctx, all, opt, progress)
	if err != nil {
		return nil, err
	}
	aug := max(opt.Augment, 1)
	out := make([][]float64, len(folds))
	for r, fold := range folds {
		out[r] = make([]float64, len(samples))
		for f := range k {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var train []row
			for _, rw := range rows {
				if rw.sample >= len(samples) || fold[rw.sample] != f {
					train = append(train, rw)
				}
			}
			m, err := fit(train, opt.L2)
			if err != nil {
				return nil, fmt.Errorf("round %d fold %d: %w", r, f, err)
			}
			for i := range samples {
				if fold[i] == f {
					out[r][i] = m.score(rows[i*aug].x) // the unperturbed crop
				}
			}
		}
	}
	return out, nil
}
