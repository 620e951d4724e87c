package background

import (
	"math/rand/v2"
	"testing"
)

// TestLBSP checks the word-parallel code against the plain definition.
func TestLBSP(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 200000; k++ {
		var vals [16]uint8
		var n nbhd
		for i := range vals {
			vals[i] = uint8(r.IntN(256))
			n[i/4] |= uint64(vals[i]) << (16 * (i % 4))
		}
		ref, th := uint8(r.IntN(256)), uint8(r.IntN(100))
		if k%7 == 0 {
			th = 0
		}
		var want uint16
		for i, v := range vals {
			if absDiff(v, ref) > int(th) {
				want |= 1 << i
			}
		}
		if got := lbsp(&n, ref, th); got != want {
			t.Fatalf("vals %v ref %d t %d: got %016b want %016b", vals, ref, th, got, want)
		}
	}
}
