package change

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkTrain(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, nf := 50000, 110
	x := make([][]float32, n)
	y := make([]uint8, n)
	for i := range x {
		x[i] = make([]float32, nf)
		for f := range x[i] {
			x[i][f] = float32(rng.NormFloat64())
		}
		if x[i][3]+x[i][7]*x[i][9] > 0.5 {
			y[i] = 1
		}
	}
	p := DefaultTrainParams()
	p.Rounds = 20
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Train(x, y, p, nil)
	}
}
