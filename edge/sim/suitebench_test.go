package sim

import (
	"testing"
	"time"
)

// BenchmarkSuiteFrame renders suite frames at the eval's default size over
// a cycle of conditions (seeds 1-4: sun, clouds, dusk, night; with rain,
// shake and moving shadows on some).
func BenchmarkSuiteFrame(b *testing.B) {
	var ss []Scene
	for seed := int64(1); seed <= 4; seed++ {
		s := Suite(seed, SuiteOptions{Duration: 2 * time.Minute})
		buf := make([]byte, s.Width*s.Height*3)
		s.Frame(0, buf)
		ss = append(ss, s)
	}
	buf := make([]byte, ss[0].Width*ss[0].Height*3)
	n := ss[0].Frames()
	for i := 0; b.Loop(); i++ {
		ss[i%len(ss)].Frame(i*37%n, buf)
	}
}
