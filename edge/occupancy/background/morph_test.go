package background

import (
	"math/rand/v2"
	"testing"
)

// TestMorph checks the box-count morphology against the definitions.
func TestMorph(t *testing.T) {
	const w, h = 37, 23
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]uint8, w*h)
	for i := range src {
		src[i] = b2u(r.IntN(3) == 0)
	}
	window := func(x, y, rad int) (set, all int32) {
		for yy := max(y-rad, 0); yy <= min(y+rad, h-1); yy++ {
			for xx := max(x-rad, 0); xx <= min(x+rad, w-1); xx++ {
				set += int32(src[yy*w+xx])
				all++
			}
		}
		return
	}
	mo := newMorph(w, h)
	got := make([]uint8, w*h)
	for _, tc := range []struct {
		name string
		op   func(src, dst []uint8, r int)
		want func(set, all int32) bool
	}{
		{"dilate", mo.dilate, func(s, a int32) bool { return s > 0 }},
		{"erode", mo.erode, func(s, a int32) bool { return s == a }},
		{"median", mo.median, func(s, a int32) bool { return 2*s > a }},
	} {
		for _, rad := range []int{1, 3, 4} {
			tc.op(src, got, rad)
			for p := range got {
				s, a := window(p%w, p/w, rad)
				if want := b2u(tc.want(s, a)); got[p] != want {
					t.Fatalf("%s r=%d at (%d,%d): got %d want %d", tc.name, rad, p%w, p/w, got[p], want)
				}
			}
		}
	}
}

func TestHoles(t *testing.T) {
	rows := []string{
		"..........",
		".####.###.",
		".#..#.#.#.",
		".####.#...",
		"..........",
	}
	want := []string{
		"..........",
		"..........",
		"..##......",
		"..........",
		"..........",
	}
	w, h := len(rows[0]), len(rows)
	src := make([]uint8, w*h)
	for y, r := range rows {
		for x, c := range r {
			src[y*w+x] = b2u(c == '#')
		}
	}
	got := make([]uint8, w*h)
	newMorph(w, h).holes(src, got)
	for y, r := range want {
		for x, c := range r {
			if got[y*w+x] != b2u(c == '#') {
				t.Fatalf("hole mask wrong at (%d,%d)", x, y)
			}
		}
	}
}
