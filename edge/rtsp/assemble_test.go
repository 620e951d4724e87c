package rtsp

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"
)

func avcc(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func annexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

var (
	sps    = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda}
	pps    = []byte{0x68, 0xce, 0x3c, 0x80}
	sps2   = []byte{0x67, 0x64, 0x00, 0x1f, 0xac}
	idr1   = []byte{0x65, 0x88, 0x01}
	idr2   = []byte{0x65, 0x00, 0x02} // second slice of the same IDR picture
	p1     = []byte{0x41, 0x9a, 0x03}
	p2     = []byte{0x41, 0x00, 0x04}
	second = time.Second
)

func TestSplitAVCC(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want [][]byte
		bad  bool
	}{
		{name: "one", in: avcc(idr1), want: [][]byte{idr1}},
		{name: "two", in: avcc(sps, pps), want: [][]byte{sps, pps}},
		{name: "empty", in: nil, bad: true},
		{name: "short header", in: []byte{0, 0, 1}, bad: true},
		{name: "size past end", in: []byte{0, 0, 0, 9, 0x65}, bad: true},
		{name: "zero size", in: []byte{0, 0, 0, 0}, bad: true},
		{name: "annex-b is not avcc", in: annexB(idr1), bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := splitAVCC(c.in)
			if c.bad {
				if err == nil {
					t.Fatalf("splitAVCC(% x) = %x, want an error", c.in, got)
				}
				return
			}
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("splitAVCC: %x, %v", got, err)
			}
			for i := range got {
				if !bytes.Equal(got[i], c.want[i]) {
					t.Fatalf("nal %d: % x, want % x", i, got[i], c.want[i])
				}
			}
		})
	}
}

type pkt struct {
	t    time.Duration
	nals [][]byte
}

func run(a *assembler, pkts []pkt) []AccessUnit {
	var out []AccessUnit
	now := time.Unix(1000, 0)
	for _, p := range pkts {
		now = now.Add(time.Millisecond)
		if au, ok := a.push(p.t, p.nals, now); ok {
			out = append(out, au)
		}
	}
	if au, ok := a.flush(); ok {
		out = append(out, au)
	}
	return out
}

func TestAssembler(t *testing.T) {
	t0 := 7*time.Hour + 59*time.Minute
	a := &assembler{}
	a.setParams(sps, pps)
	got := run(a, []pkt{
		{t0, [][]byte{idr1}}, // two slices of a keyframe in two packets
		{t0, [][]byte{idr2}},
		{t0 + 40*time.Millisecond, [][]byte{p1}},
		{t0 + 40*time.Millisecond, [][]byte{p2}},
		{t0 + 80*time.Millisecond, [][]byte{sps2, pps}}, // new parameter sets in-band...
		{t0 + 80*time.Millisecond, [][]byte{idr1}},      // ...before a keyframe
		{t0 + 120*time.Millisecond, [][]byte{idr1}},     // a later keyframe alone gets sps2
	})
	want := []AccessUnit{
		{Keyframe: true, AnnexB: annexB(sps, pps, idr1, idr2), PTS: 0},
		{Keyframe: false, AnnexB: annexB(p1, p2), PTS: 40 * time.Millisecond},
		{Keyframe: true, AnnexB: annexB(sps2, pps, idr1), PTS: 80 * time.Millisecond},
		{Keyframe: true, AnnexB: annexB(sps2, pps, idr1), PTS: 120 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d units, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Keyframe != w.Keyframe || g.PTS != w.PTS || !bytes.Equal(g.AnnexB, w.AnnexB) {
			t.Errorf("unit %d: key=%v pts=%v % x\nwant key=%v pts=%v % x", i, g.Keyframe, g.PTS, g.AnnexB, w.Keyframe, w.PTS, w.AnnexB)
		}
	}
	if want := time.Unix(1000, 0).Add(time.Millisecond); !got[0].Received.Equal(want) {
		t.Errorf("Received = %v, want the first packet's %v", got[0].Received, want)
	}
}

func TestAssemblerNoParams(t *testing.T) {
	// Without any SPS/PPS a keyframe is passed on as it is; the decoder will
	// say what it thinks of it.
	got := run(&assembler{}, []pkt{{0, [][]byte{idr1}}})
	if len(got) != 1 || !got[0].Keyframe || !bytes.Equal(got[0].AnnexB, annexB(idr1)) {
		t.Fatalf("got %+v", got)
	}
}

func TestAssemblerWrap(t *testing.T) {
	start := rtpWrap - 80*time.Millisecond
	got := run(&assembler{}, []pkt{
		{start, [][]byte{p1}},
		{start + 40*time.Millisecond, [][]byte{p1}},
		{0, [][]byte{p1}},
		{40 * time.Millisecond, [][]byte{p1}},
	})
	for i, au := range got {
		if want := time.Duration(i) * 40 * time.Millisecond; au.PTS != want {
			t.Errorf("unit %d: PTS %v, want %v", i, au.PTS, want)
		}
	}
}

func TestAssemblerDiscard(t *testing.T) {
	a := &assembler{}
	a.push(0, [][]byte{idr1}, time.Now())
	a.discard()
	if au, ok := a.flush(); ok {
		t.Fatalf("flush after discard returned %+v", au)
	}
}

// TestQueue drives the drop policy with a handler that is not reading.
func TestQueue(t *testing.T) {
	k := func(pts int) AccessUnit { return AccessUnit{Keyframe: true, PTS: time.Duration(pts)} }
	p := func(pts int) AccessUnit { return AccessUnit{PTS: time.Duration(pts)} }
	for _, c := range []struct {
		name    string
		size    int
		in      []AccessUnit
		want    []time.Duration // PTS left in the queue
		dropped int
	}{
		{"fits", 4, []AccessUnit{k(1), p(2), p(3)}, []time.Duration{1, 2, 3}, 0},
		{"non-keyframe to a full queue, then the rest of its GOP", 3,
			[]AccessUnit{k(1), p(2), p(3), p(4), p(5)}, []time.Duration{1, 2, 3}, 2},
		{"keyframe cuts the stale tail of the GOP before it", 4,
			[]AccessUnit{k(1), p(2), p(3), p(4), p(5), k(6)}, []time.Duration{1, 6}, 4},
		{"keyframe into a full queue takes the newest non-keyframe's place", 3,
			[]AccessUnit{k(1), p(2), p(3), k(4)}, []time.Duration{1, 2, 4}, 1},
		{"keyframe into a queue of keyframes drops the oldest GOP", 3,
			[]AccessUnit{k(1), p(2), k(3), k(4), k(5)}, []time.Duration{3, 4, 5}, 2},
		{"after a keyframe non-keyframes are taken again", 3,
			[]AccessUnit{k(1), p(2), p(3), p(4), k(5), p(6)}, []time.Duration{1, 5, 6}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := newQueue(c.size)
			dropped := 0
			for _, au := range c.in {
				dropped += q.push(au)
			}
			var got []time.Duration
			ctx, cancel := context.WithCancel(context.Background())
			for q.n > 0 {
				au, _ := q.pop(ctx)
				got = append(got, au.PTS)
			}
			cancel()
			if _, ok := q.pop(ctx); ok {
				t.Error("pop after cancel returned a unit")
			}
			if dropped != c.dropped || len(got) != len(c.want) {
				t.Fatalf("left %v, dropped %d; want %v, %d", got, dropped, c.want, c.dropped)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("left %v, want %v", got, c.want)
				}
			}
		})
	}
}
