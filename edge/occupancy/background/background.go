// Package background separates what moves or has newly arrived from the
// fixed scene of a street camera. It owns one model: a sample-based,
// self-tuning background in the spirit of SuBSENSE (St-Charles, Bilodeau and
// Bergevin, IEEE TIP 2015). Every pixel keeps a set of recent background
// observations, each a colour and a local binary similarity pattern (LBSP, a
// 16-bit texture code that changes little when only the lighting does). A
// pixel is background when enough samples match it in colour and texture.
// Per-pixel feedback widens the match threshold where the scene itself is
// unstable (swaying trees, flicker: pixels that blink between labels) and
// slows learning where there is foreground, and a frame-level check relearns
// quickly after a sudden global change such as street lights switching on.
// The raw labels are cleaned with closing, hole filling and a median vote.
//
// The code is pure Go on packed BGR frames: no cgo.
package background

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
)

// Options are the few knobs of the model. The zero value of a field means
// its default; the defaults are the published SuBSENSE settings, which were
// chosen for all CDnet categories at once, not for one sequence.
type Options struct {
	// Samples is how many background observations each pixel keeps (50).
	Samples int
	// Matches is how many samples must agree for "background" (2).
	Matches int
	// Colour is the smallest per-channel colour distance the model will
	// call a mismatch, in 8-bit grey levels (30); the adaptive threshold
	// R(x) only raises it. Below it lie sensor noise and JPEG artefacts.
	Colour int
	// LBSPRel is the LBSP comparison threshold relative to the centre
	// intensity (0.333): a neighbour differs when |n−c| > LBSPRel·c, so the
	// texture code follows contrast, not absolute brightness.
	LBSPRel float64
	// Seed makes the random sampling reproducible (1).
	Seed uint64
}

func (o Options) withDefaults() Options {
	if o.Samples <= 0 {
		o.Samples = 50
	}
	if o.Matches <= 0 {
		o.Matches = 2
	}
	if o.Colour <= 0 {
		o.Colour = 30
	}
	if o.LBSPRel <= 0 {
		o.LBSPRel = 0.333
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	return o
}

// Internal feedback constants (SuBSENSE's): they scale the per-pixel loops
// and are not meant to be tuned per scene.
const (
	ghostMaxDist  = 0.010 // "nothing changes here" for ghost absorption
	ghostMinSat   = 0.995 // "always foreground here" for ghost absorption
	rStep         = 0.01  // step of the distance-threshold factor R(x)
	vIncr, vDecr  = 1.0, 0.1
	tDecr, tIncr  = 0.25, 0.5
	tLower        = 2.0   // fastest update: 1 in 2 frames
	tUpper        = 256.0 // slowest update: 1 in 256 frames
	unstableRatio = 0.1
	unstableR     = 3.0
	descRatioMin  = 0.1
	descRatioMax  = 0.5
	movingAvgN    = 100 // frames of the long-term moving averages
	frameDown     = 8   // downsampling of the frame-level analysis
	descOffset    = 3   // added to the texture (Hamming) threshold
	medianRadius  = 4   // 9×9 median vote at 320×240
	descMax1      = 16  // bits in one channel's LBSP code
	colMax1       = 255
)

// Model is the background of one fixed camera. It is not safe for
// concurrent use.
type Model struct {
	w, h, n int
	o       Options
	ns      int // samples per pixel
	rng     rng // for the sequential parts
	bands   []band

	pw   int // padded row length in pixels (w+4)
	pad  []byte
	offs [16]int // LBSP neighbour offsets in pad, for channel 0

	smp []sample // n·ns background samples, pixel-major
	px  []pixel  // per-pixel state

	lastCol  []uint8
	lastDesc []uint16

	blinks    []uint8
	lastRaw   []uint8
	lastBlink []uint8
	lastFG    []uint8
	hold      []uint8

	raw, tmp1, tmp2 []uint8
	mo              *morph

	lut           [256]uint8 // LBSP threshold per centre intensity
	lastNonZero   float64
	frames        int
	lowCap, upCap float64

	dsW, dsH          int
	dsCur, dsLT, dsST []float32
	autoReset         bool
	sinceReset        int
	cooldown          int
	medianR           int
	spread3           bool
	ready             bool
}

// sample is one background observation of a pixel.
type sample struct {
	col  [3]uint8
	desc [3]uint16
}

// pixel is the feedback state of one pixel.
type pixel struct {
	r, v, t          float32 // distance factor R(x), variation V(x), update period T(x)
	meanLast         float32 // moving average of the frame-to-frame distance
	minLT, minST     float32 // moving averages of the distance to the model
	rawLT, rawST     float32 // moving averages of the raw label
	finalLT, finalST float32 // moving averages of the final label
}

// New returns an empty model for w×h frames; the first frame given to Apply
// initialises it.
func New(w, h int, o Options) *Model {
	if w < 8 || h < 8 {
		panic(fmt.Sprintf("background: frame %dx%d too small", w, h))
	}
	o = o.withDefaults()
	n := w * h
	m := &Model{w: w, h: h, n: n, o: o, ns: o.Samples, rng: rng(o.Seed*0x9E3779B97F4A7C15 | 1)}
	m.pw = w + 4
	nb := max(min(h/32, 4), 1)
	for i := 0; i < nb; i++ {
		m.bands = append(m.bands, band{y0: h * i / nb, y1: h * (i + 1) / nb, rng: rng((o.Seed+uint64(i)+1)*0xBF58476D1CE4E5B9 | 1)})
	}
	m.pad = make([]byte, m.pw*(h+4)*3)
	k := 0
	// The 16 LBSP neighbours in a 5×5 patch: inner and outer diagonals,
	// outer and inner cross.
	for _, d := range [16][2]int{
		{-1, 1}, {1, 1}, {1, -1}, {-1, -1},
		{-2, 2}, {2, 2}, {2, -2}, {-2, -2},
		{0, 2}, {0, -2}, {2, 0}, {-2, 0},
		{0, 1}, {0, -1}, {1, 0}, {-1, 0},
	} {
		m.offs[k] = (d[1]*m.pw + d[0]) * 3
		k++
	}
	m.smp = make([]sample, n*m.ns)
	m.px = make([]pixel, n)
	m.lastCol = make([]uint8, n*3)
	m.lastDesc = make([]uint16, n*3)
	b := func() []uint8 { return make([]uint8, n) }
	m.blinks, m.lastRaw, m.lastBlink, m.lastFG = b(), b(), b(), b()
	m.raw, m.tmp1, m.tmp2 = b(), b(), b()
	m.mo = newMorph(w, h)
	m.dsW, m.dsH = max(w/frameDown, 1), max(h/frameDown, 1)
	m.dsCur = make([]float32, m.dsW*m.dsH*3)
	m.dsLT = make([]float32, m.dsW*m.dsH*3)
	m.dsST = make([]float32, m.dsW*m.dsH*3)
	// Larger frames see the same objects with more pixels: a wider median
	// and a wider spread of updates keep the behaviour the same.
	const qvga = 320 * 240
	m.medianR = medianRadius + int(math.Floor(float64(n)/qvga+0.5))/2
	if m.medianR > 6 {
		m.medianR = 6
	}
	m.spread3 = n <= 2*qvga
	return m
}

// Hold marks pixels (mask[i] != 0, w·h bytes) whose samples and thresholds
// must not change in the following Apply calls, so that an object that stays
// is not absorbed into the background while a caller is timing it. nil
// releases all.
// The model keeps the slice; the caller may change it between calls.
func (m *Model) Hold(mask []byte) {
	if mask != nil && len(mask) != m.n {
		panic("background: hold mask size")
	}
	m.hold = mask
}

func (m *Model) held(p int) bool { return m.hold != nil && m.hold[p] != 0 }

// rng is a xorshift64* stream: fast, and reproducible from the seed.
type rng uint64

func (r *rng) next() uint32 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return uint32((x * 2685821657736338717) >> 32)
}

// n returns a number in [0, k).
func (r *rng) n(k int) int { return int(uint64(r.next()) * uint64(k) >> 32) }

// band is a range of rows labelled by one goroutine.
type band struct {
	y0, y1 int
	rng    rng
}

// fillPad copies frame into the padded buffer, replicating the border.
func (m *Model) fillPad(frame []byte) {
	w, h, pw := m.w, m.h, m.pw
	for y := -2; y < h+2; y++ {
		sy := min(max(y, 0), h-1)
		src := frame[sy*w*3 : sy*w*3+w*3]
		dst := m.pad[((y+2)*pw+2)*3:]
		copy(dst, src)
		for x := 1; x <= 2; x++ {
			copy(m.pad[((y+2)*pw+2-x)*3:][:3], src[:3])
			copy(dst[(w-1+x)*3:][:3], src[(w-1)*3:])
		}
	}
}

// nbhd holds the 16 LBSP neighbours of one pixel and channel as 16-bit
// lanes, four to a word, so that a code against any reference value takes a
// handful of word operations instead of 16 branches.
type nbhd [4]uint64

const (
	lanes    = 0x0001_0001_0001_0001
	laneHigh = 0x8000_8000_8000_8000
	// gather moves the lane sign bits (0, 16, 32, 48 after >>15) to bits
	// 48-51; the other partial products land elsewhere without carries.
	gather = 1<<48 | 1<<33 | 1<<18 | 1<<3
)

func (m *Model) neighbours(at int) (n nbhd) {
	p, o := m.pad, &m.offs
	for i := 0; i < 4; i++ {
		n[i] = uint64(p[at+o[4*i]]) | uint64(p[at+o[4*i+1]])<<16 |
			uint64(p[at+o[4*i+2]])<<32 | uint64(p[at+o[4*i+3]])<<48
	}
	return n
}

// lbsp is the texture code of a patch: bit i is set when neighbour i differs
// from ref by more than t. With u = n+256−ref per lane, |n−ref| > t is
// u > 256+t or u < 256−t; both are read from a lane's top bit after adding
// a bias, and no lane can carry or borrow into the next.
func lbsp(n *nbhd, ref, t uint8) uint16 {
	k := (256 - uint64(ref)) * lanes
	kg := (32767 - 256 - uint64(t)) * lanes
	kl := (32768 + 255 - uint64(t)) * lanes
	u0, u1, u2, u3 := n[0]+k, n[1]+k, n[2]+k, n[3]+k
	x0 := ((u0 + kg) | (kl - u0)) & laneHigh
	x1 := ((u1 + kg) | (kl - u1)) & laneHigh
	x2 := ((u2 + kg) | (kl - u2)) & laneHigh
	x3 := ((u3 + kg) | (kl - u3)) & laneHigh
	return uint16(((x0>>15)*gather)>>48) |
		uint16(((x1>>15)*gather)>>48)<<4 |
		uint16(((x2>>15)*gather)>>48)<<8 |
		uint16(((x3>>15)*gather)>>48)<<12
}

func (m *Model) init(frame []byte) {
	m.fillPad(frame)
	for i := range m.lut {
		m.lut[i] = sat8(float64(i) * m.o.LBSPRel)
	}
	for y := 0; y < m.h; y++ {
		for x := 0; x < m.w; x++ {
			p := y*m.w + x
			at := ((y+2)*m.pw + x + 2) * 3
			for c := 0; c < 3; c++ {
				v := m.pad[at+c]
				nb := m.neighbours(at + c)
				m.lastCol[p*3+c] = v
				m.lastDesc[p*3+c] = lbsp(&nb, v, m.lut[v])
			}
		}
	}
	for p := range m.px {
		m.px[p] = pixel{r: 1, v: 10, t: tLower}
	}
	m.frames = 0
	m.lowCap, m.upCap = tLower, tUpper
	m.autoReset = true
	m.lastNonZero = 0
	m.refresh(1, true)
}

// refresh rewrites a fraction of every background pixel's samples from the
// last frame, each taken from a random place within two pixels so that the
// model tolerates small jitter.
func (m *Model) refresh(frac float64, force bool) {
	count, start := m.ns, 0
	if frac < 1 {
		count = int(frac * float64(m.ns))
		start = m.rng.n(m.ns)
	}
	for y := 0; y < m.h; y++ {
		for x := 0; x < m.w; x++ {
			p := y*m.w + x
			if m.held(p) || (!force && m.lastFG[p] != 0) {
				continue
			}
			for k := start; k < start+count; k++ {
				sx := min(max(x+m.rng.n(5)-2, 0), m.w-1)
				sy := min(max(y+m.rng.n(5)-2, 0), m.h-1)
				q := sy*m.w + sx
				if !force && m.lastFG[q] != 0 {
					continue
				}
				sm := &m.smp[p*m.ns+k%m.ns]
				copy(sm.col[:], m.lastCol[q*3:q*3+3])
				copy(sm.desc[:], m.lastDesc[q*3:q*3+3])
			}
		}
	}
}

// Relearn replaces the whole model of the marked pixels (mask[i] != 0)
// with what the last frame showed there, for a caller that knows the
// background changed for good, for example where an object that was in view
// at start-up has left (a ghost). It does nothing before the first frame.
func (m *Model) Relearn(mask []byte) {
	if !m.ready {
		return
	}
	for y := 0; y < m.h; y++ {
		for x := 0; x < m.w; x++ {
			p := y*m.w + x
			if mask[p] == 0 {
				continue
			}
			for k := 0; k < m.ns; k++ {
				sx := min(max(x+m.rng.n(3)-1, 0), m.w-1)
				sy := min(max(y+m.rng.n(3)-1, 0), m.h-1)
				q := sy*m.w + sx
				if mask[q] == 0 {
					q = p
				}
				sm := &m.smp[p*m.ns+k]
				copy(sm.col[:], m.lastCol[q*3:q*3+3])
				copy(sm.desc[:], m.lastDesc[q*3:q*3+3])
			}
			m.px[p] = pixel{r: 1, v: 10, t: tLower}
			m.lastFG[p] = 0
		}
	}
}

// BackgroundAt returns the mean colour (BGR) of pixel i's samples: what the
// model believes the empty scene looks like there.
func (m *Model) BackgroundAt(i int) [3]uint8 {
	var b, g, r int
	for _, s := range m.smp[i*m.ns : i*m.ns+m.ns] {
		b += int(s.col[0])
		g += int(s.col[1])
		r += int(s.col[2])
	}
	h := m.ns / 2
	return [3]uint8{uint8((b + h) / m.ns), uint8((g + h) / m.ns), uint8((r + h) / m.ns)}
}

// BackgroundImage writes BackgroundAt of every pixel into dst (packed BGR,
// w·h·3 bytes).
func (m *Model) BackgroundImage(dst []byte) {
	for p := 0; p < m.n; p++ {
		c := m.BackgroundAt(p)
		copy(dst[p*3:p*3+3], c[:])
	}
}

// Apply labels one frame (packed BGR, w·h·3 bytes) into fg (w·h bytes: 255
// foreground, 0 background) and learns from it.
func (m *Model) Apply(frame, fg []byte) {
	if len(frame) != m.n*3 || len(fg) != m.n {
		panic(fmt.Sprintf("background: frame %d bytes, mask %d bytes, want %d and %d", len(frame), len(fg), m.n*3, m.n))
	}
	if !m.ready {
		m.init(frame)
		m.ready = true
	} else {
		m.fillPad(frame)
	}
	m.frames++
	avgLT := 1 / float32(min(m.frames, movingAvgN))
	avgST := 1 / float32(min(m.frames, movingAvgN/4))
	// Bands of rows are labelled in parallel. Each band has its own random
	// stream and spreads updates only within itself, so the result does not
	// depend on scheduling or on the number of cores.
	var wg sync.WaitGroup
	nonZero := make([]int, len(m.bands))
	workers := min(len(m.bands), runtime.GOMAXPROCS(0))
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := k; i < len(m.bands); i += workers {
				nonZero[i] = m.band(&m.bands[i], avgLT, avgST)
			}
		}(k)
	}
	wg.Wait()
	total := 0
	for _, n := range nonZero {
		total += n
	}
	m.postProcess(fg, avgLT, avgST)
	m.adaptLBSP(float64(total) / float64(m.n))
	m.frameLevel(frame, avgLT, avgST)
}

// band labels rows [b.y0, b.y1) and learns from them; it returns how many
// pixels had an informative texture code.
func (m *Model) band(b *band, avgLT, avgST float32) int {
	ns := m.ns
	stabOffset := float32(m.o.Colour / 5)
	nonZero := 0
	r := &b.rng
	var cur [3]uint8
	var curDesc [3]uint16
	var nb [3]nbhd
	for y := b.y0; y < b.y1; y++ {
		for x := 0; x < m.w; x++ {
			p := y*m.w + x
			at := ((y+2)*m.pw + x + 2) * 3
			for c := 0; c < 3; c++ {
				cur[c] = m.pad[at+c]
				nb[c] = m.neighbours(at + c)
				curDesc[c] = lbsp(&nb[c], cur[c], m.lut[cur[c]])
			}
			rf := m.px[p].r
			unst := m.px[p].rawLT-m.px[p].finalLT > unstableRatio || m.px[p].rawST-m.px[p].finalST > unstableRatio || rf > unstableR
			colThr := rf * float32(m.o.Colour)
			descThr := (1 << int(math.Floor(float64(rf)+0.5))) + descOffset
			if unst {
				descThr += descOffset
			} else {
				colThr -= stabOffset
			}
			totColThr := int(colThr) * 3
			totDescThr := descThr * 3
			scThr := totColThr / 2

			good := 0
			minDesc, minSum := 3*descMax1, 3*colMax1
			smp := m.smp[p*ns : p*ns+ns]
			for s := 0; s < ns && good < m.o.Matches; s++ {
				bc, bd := &smp[s].col, &smp[s].desc
				totDesc, totSum := 0, 0
				ok := true
				for c := 0; c < 3; c++ {
					cd := absDiff(cur[c], bc[c])
					if cd > scThr {
						ok = false
						break
					}
					intra := bits.OnesCount16(curDesc[c] ^ bd[c])
					inter := bits.OnesCount16(lbsp(&nb[c], bc[c], m.lut[bc[c]]) ^ bd[c])
					dd := (intra + inter) / 2
					sum := min((dd/2)*(colMax1/descMax1)+cd, colMax1)
					if sum > scThr {
						ok = false
						break
					}
					totDesc += dd
					totSum += sum
				}
				if !ok || totDesc > totDescThr || totSum > totColThr {
					continue
				}
				minDesc = min(minDesc, totDesc)
				minSum = min(minSum, totSum)
				good++
			}

			lastD := (float32(absDiff(m.lastCol[p*3], cur[0])+absDiff(m.lastCol[p*3+1], cur[1])+absDiff(m.lastCol[p*3+2], cur[2]))/(3*colMax1) +
				float32(bits.OnesCount16(m.lastDesc[p*3]^curDesc[0])+bits.OnesCount16(m.lastDesc[p*3+1]^curDesc[1])+bits.OnesCount16(m.lastDesc[p*3+2]^curDesc[2]))/(3*descMax1)) / 2
			m.px[p].meanLast = m.px[p].meanLast*(1-avgST) + lastD*avgST
			minD := (float32(minSum)/(3*colMax1) + float32(minDesc)/(3*descMax1)) / 2
			if good < m.o.Matches {
				minD = min(1, minD+float32(m.o.Matches-good)/float32(m.o.Matches))
				m.px[p].rawLT = m.px[p].rawLT*(1-avgLT) + avgLT
				m.px[p].rawST = m.px[p].rawST*(1-avgST) + avgST
				m.raw[p] = 1
				if m.cooldown > 0 && !m.held(p) && r.next()&1 == 0 {
					m.store(p, r.n(ns), &cur, &curDesc)
				}
			} else {
				m.px[p].rawLT *= 1 - avgLT
				m.px[p].rawST *= 1 - avgST
				m.raw[p] = 0
				rate := int(math.Ceil(float64(m.px[p].t)))
				if !m.held(p) && r.n(rate) == 0 {
					m.store(p, r.n(ns), &cur, &curDesc)
				}
				// Spread the observation into a neighbour's model: this is
				// what lets the model forget objects that left (ghosts).
				spread3 := m.spread3 && !unst
				q := m.neighbour(r, x, y, b, spread3)
				div := rate
				if !spread3 {
					div = rate/2 + 1
				}
				if !m.held(q) && (r.n(div) == 0 ||
					(m.px[q].rawST > ghostMinSat && m.px[q].meanLast < ghostMaxDist && r.n(int(m.lowCap)) == 0)) {
					m.store(q, r.n(ns), &cur, &curDesc)
				}
			}
			if !m.held(p) {
				// A held pixel's thresholds stay as they were too: the
				// feedback would otherwise take a lasting object for a
				// restless background and widen R(x) until it matches.
				m.px[p].minLT = m.px[p].minLT*(1-avgLT) + minD*avgLT
				m.px[p].minST = m.px[p].minST*(1-avgST) + minD*avgST
				m.feedback(p, unst)
			}
			if bits.OnesCount16(curDesc[0])+bits.OnesCount16(curDesc[1])+bits.OnesCount16(curDesc[2]) >= 4 {
				nonZero++
			}
			copy(m.lastCol[p*3:p*3+3], cur[:])
			copy(m.lastDesc[p*3:p*3+3], curDesc[:])
		}
	}
	return nonZero
}

func (m *Model) store(p, s int, col *[3]uint8, desc *[3]uint16) {
	m.smp[p*m.ns+s] = sample{col: *col, desc: *desc}
}

// neighbour picks a random pixel in the 3×3 (or 5×5) neighbourhood,
// staying inside the band.
func (m *Model) neighbour(r *rng, x, y int, b *band, small bool) int {
	var dx, dy int
	if small {
		k := r.n(8)
		if k >= 4 {
			k++
		}
		dx, dy = k%3-1, k/3-1
	} else {
		k := r.n(24)
		if k >= 12 {
			k++
		}
		dx, dy = k%5-2, k/5-2
	}
	x = min(max(x+dx, 0), m.w-1)
	y = min(max(y+dy, b.y0), b.y1-1)
	return y*m.w + x
}

// feedback adjusts the pixel's update period T(x), variation V(x) and
// distance factor R(x): pixels that blink between labels get a wider
// threshold, pixels with foreground learn more slowly.
func (m *Model) feedback(p int, unst bool) {
	lo, hi := float32(m.lowCap), float32(m.upCap)
	mx := max(m.px[p].minLT, m.px[p].minST, 1e-6)
	mn := min(m.px[p].minLT, m.px[p].minST)
	t := m.px[p].t
	if m.lastFG[p] != 0 || (mn < unstableRatio && m.raw[p] != 0) {
		if t < hi {
			t += tIncr / (mx * m.px[p].v)
		}
	} else if t > lo {
		t -= tDecr * m.px[p].v / mx
	}
	m.px[p].t = min(max(t, lo), hi)
	if mx > unstableRatio && m.blinks[p] != 0 {
		m.px[p].v += vIncr
	} else if m.px[p].v > vDecr {
		switch {
		case m.lastFG[p] != 0:
			m.px[p].v -= vDecr / 4
		case unst:
			m.px[p].v -= vDecr / 2
		default:
			m.px[p].v -= vDecr
		}
		m.px[p].v = max(m.px[p].v, vDecr)
	}
	if g := 1 + mn*2; m.px[p].r < g*g {
		m.px[p].r += rStep * (m.px[p].v - vDecr)
	} else {
		m.px[p].r = max(m.px[p].r-rStep/m.px[p].v, 1)
	}
}

// postProcess turns the raw labels into the final mask: fill small gaps and
// holes, then a median vote; it also tracks blinking pixels.
func (m *Model) postProcess(fg []byte, avgLT, avgST float32) {
	for p := 0; p < m.n; p++ {
		cb := m.raw[p] ^ m.lastRaw[p]
		m.blinks[p] = cb | m.lastBlink[p]
		m.lastBlink[p] = cb
	}
	copy(m.lastRaw, m.raw)
	mo := m.mo
	// closing
	mo.dilate(m.raw, m.tmp1, 1)
	mo.erode(m.tmp1, m.tmp2, 1)
	// holes of the closed mask, and its eroded core
	mo.holes(m.tmp2, m.tmp1)
	for p := range m.raw {
		m.tmp1[p] |= m.raw[p]
	}
	mo.erode(m.tmp2, m.lastFG, 3)
	for p := range m.raw {
		m.tmp1[p] |= m.lastFG[p]
	}
	mo.median(m.tmp1, m.lastFG, m.medianR)
	mo.dilate(m.lastFG, m.tmp2, 3)
	for p := range m.blinks {
		m.blinks[p] &^= m.tmp2[p]
		f := float32(m.lastFG[p])
		m.px[p].finalLT = m.px[p].finalLT*(1-avgLT) + f*avgLT
		m.px[p].finalST = m.px[p].finalST*(1-avgST) + f*avgST
		fg[p] = m.lastFG[p] * 255
	}
}

// adaptLBSP keeps the texture codes informative: on flat scenes (few bits
// set) it lowers the LBSP thresholds, on very busy ones it raises them.
func (m *Model) adaptLBSP(ratio float64) {
	if ratio < descRatioMin && m.lastNonZero < descRatioMin {
		for i := range m.lut {
			if m.lut[i] > sat8(math.Ceil(float64(i)*m.o.LBSPRel/4)) {
				m.lut[i]--
			}
		}
	} else if ratio > descRatioMax && m.lastNonZero > descRatioMax {
		for i := range m.lut {
			if m.lut[i] < sat8(255*m.o.LBSPRel) {
				m.lut[i]++
			}
		}
	}
	m.lastNonZero = ratio
}

// frameLevel compares short- and long-term averages of a downsampled frame:
// a large difference means the whole scene changed (lights, exposure), and
// the model then relearns part of itself at once and updates faster.
func (m *Model) frameLevel(frame []byte, avgLT, avgST float32) {
	dw, dh := m.dsW, m.dsH
	for i := range m.dsCur {
		m.dsCur[i] = 0
	}
	for y := 0; y < dh*frameDown; y++ {
		row := frame[y*m.w*3:]
		for x := 0; x < dw*frameDown; x++ {
			d := ((y/frameDown)*dw + x/frameDown) * 3
			m.dsCur[d] += float32(row[x*3])
			m.dsCur[d+1] += float32(row[x*3+1])
			m.dsCur[d+2] += float32(row[x*3+2])
		}
	}
	total := 0
	for i := 0; i < dw*dh; i++ {
		var worst int
		for c := 0; c < 3; c++ {
			v := m.dsCur[i*3+c] / (frameDown * frameDown)
			m.dsLT[i*3+c] = m.dsLT[i*3+c]*(1-avgLT) + v*avgLT
			m.dsST[i*3+c] = m.dsST[i*3+c]*(1-avgST) + v*avgST
			worst = max(worst, int(math.Abs(float64(m.dsST[i*3+c]-m.dsLT[i*3+c]))))
		}
		total += worst
	}
	ratio := float64(total) / float64(dw*dh)
	minDiff := float64(m.o.Colour / 2)
	if m.autoReset {
		if m.sinceReset > 1000 {
			m.autoReset = false
		} else if ratio >= minDiff && m.cooldown == 0 {
			m.sinceReset = 0
			m.refresh(0.1, false)
			m.cooldown = movingAvgN / 4
			for p := range m.px {
				m.px[p].t = 1
			}
		} else {
			m.sinceReset++
		}
	} else if ratio >= minDiff*2 {
		m.sinceReset = 0
		m.autoReset = true
	}
	if ratio >= minDiff/2 {
		sh := uint(ratio / 2)
		m.lowCap = float64(max(int(tLower)>>sh, 1))
		m.upCap = float64(max(int(tUpper)>>sh, 1))
	} else {
		m.lowCap, m.upCap = tLower, tUpper
	}
	if m.cooldown > 0 {
		m.cooldown--
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func sat8(v float64) uint8 {
	if v >= 255 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return uint8(v)
}
