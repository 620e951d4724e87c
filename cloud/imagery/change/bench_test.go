package change

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
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

// BenchmarkNetProb is the network's probability map of a 1024² pair, one
// goroutine (ms per megapixel of both dates = ns/op / 2.1e6).
func BenchmarkNetProb(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := NewNet(DefaultNetConfig(), rng)
	a, c := NewImage(1024, 1024), NewImage(1024, 1024)
	for i := range a.R {
		a.R[i], a.G[i], a.B[i] = float32(rng.IntN(256)), float32(rng.IntN(256)), float32(rng.IntN(256))
		c.R[i], c.G[i], c.B[i] = float32(rng.IntN(256)), float32(rng.IntN(256)), float32(rng.IntN(256))
	}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n.Prob(a, c, 1)
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) -
		syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
	// CPU time per megapixel of both dates: what a shared machine inflates least.
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N)/(2*1024*1024/1e6), "cpu-ms/MP")
}
