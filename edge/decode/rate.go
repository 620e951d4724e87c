package decode

import (
	"bytes"
	"math"
	"time"
)

// Sample is a picture the Sampler picked, with its presentation time (the
// pts its access unit was fed with).
type Sample struct {
	Frame
	PTS time.Duration
}

// noPTS is a picture's time when libavcodec has none for it (AV_NOPTS_VALUE).
const noPTS = time.Duration(math.MinInt64)

// scaledSize is the BGR size for a w x h picture asked for width pixels wide:
// the aspect ratio kept, both sides even (what most vision code expects of
// a 4:2:0 source). A width of 0 or at least w gives the full picture: the
// Sampler never upscales.
func scaledSize(w, h, width int) (int, int) {
	if width <= 0 || width >= w {
		return w, h
	}
	dw := max(width&^1, 2)
	dh := max((h*dw+w/2)/w&^1, 2)
	return dw, dh
}

// Sampler is the reduced-rate mode for detectors that watch motion (road
// occupation) rather than single keyframes: it decodes every access unit of
// a camera's stream, since P-frames need their references, but converts to
// BGR, downscaled by swscale, only the pictures that are due at its rate: a
// picture nobody analyses is never converted. (At 1080p converting every
// picture adds about half again to the cost of decoding it; see
// `gridwatch-edge eval decode`.)
//
// Pictures are due on a fixed grid of presentation times (at 2 fps from a
// 25 fps camera: 0, 0.52, 1.0, 1.52, ... s), so the rate holds on average
// without drift. Nothing is decoded before the first keyframe, nor after a
// damaged picture until the next keyframe: P-frames would carry the damage
// into every picture up to it, so the Sampler skips them and starts the
// decoder afresh at the keyframe. A non-reference picture (a B-frame, or the
// upper temporal layer of a camera with "SVC" on) that will not be due is
// not decoded either: no other picture needs it.
//
// A Sampler owns its Decoder while in use; neither is safe for concurrent
// use.
type Sampler struct {
	d        *Decoder
	interval time.Duration
	width    int
	dueFn    func(time.Duration) bool

	started bool          // a picture was converted since the last Reset
	next    time.Duration // presentation time the next picture is due at
	tainted bool          // waiting for a keyframe
	clean   time.Duration // pictures from this time on are clean (the keyframe's)
	stats   SamplerStats
}

// SamplerStats count what a Sampler did with the access units it was fed.
type SamplerStats struct {
	Units     uint64 // fed
	Skipped   uint64 // never decoded: before a keyframe, or not due and not a reference
	Converted uint64 // pictures converted to BGR and returned
}

// NewSampler samples d's pictures at fps (0 or less: every picture), width
// pixels wide (0: full size).
func NewSampler(d *Decoder, fps float64, width int) *Sampler {
	s := &Sampler{d: d, width: width, tainted: true}
	if fps > 0 {
		s.interval = time.Duration(float64(time.Second) / fps)
	}
	s.dueFn = s.due
	return s
}

// Decode feeds the next access unit of the stream (Annex-B, in decode order;
// every unit, not only the ones that will be wanted) with its presentation
// time, and returns the pictures that were due: usually none or one. A
// damaged picture is reported as ErrDamaged alongside any good ones, and the
// Sampler stays usable after any error.
func (s *Sampler) Decode(annexB []byte, pts time.Duration) ([]Sample, error) {
	s.stats.Units++
	typ, ref := firstSlice(annexB)
	if s.tainted {
		if typ != nalIDR {
			s.stats.Skipped++
			return nil, nil
		}
		// Start over from nothing at the keyframe.
		if err := s.d.reopen(); err != nil {
			return nil, err
		}
		s.tainted, s.clean = false, pts
	}
	if typ != 0 && !ref && !s.wouldBeDue(pts) {
		s.stats.Skipped++
		return nil, nil
	}
	out, err := s.d.decodeSampled(annexB, pts, s.dueFn, s.width)
	s.stats.Converted += uint64(len(out))
	if err != nil {
		// Damaged or undecodable: what follows up to the next keyframe is
		// predicted from it.
		s.tainted = true
	}
	return out, err
}

// Stats returns the counters since NewSampler.
func (s *Sampler) Stats() SamplerStats { return s.stats }

// Reset forgets the stream: the pictures and references the decoder holds
// and the sampling schedule; decoding starts afresh at the next keyframe.
// Call it when the camera's stream restarts (a new edge/rtsp Session, whose
// times start again from 0).
func (s *Sampler) Reset() {
	s.d.reset()
	s.started, s.next, s.tainted, s.clean = false, 0, true, 0
}

// wouldBeDue reports whether a picture at pts would be converted, without
// changing the schedule.
func (s *Sampler) wouldBeDue(pts time.Duration) bool {
	switch {
	case s.tainted || pts == noPTS || pts < s.clean:
		return false
	case !s.started || pts < s.next-s.interval:
		return true
	}
	return pts >= s.next
}

// due decides for a decoded picture and moves the schedule on when it says
// yes.
func (s *Sampler) due(pts time.Duration) bool {
	if !s.wouldBeDue(pts) {
		return false
	}
	if !s.started || pts < s.next-s.interval {
		// The first picture, or time went back (a restart without Reset).
		s.started, s.next = true, pts+s.interval
		return true
	}
	s.next += s.interval
	if s.next <= pts { // a gap in the stream: no burst to catch up
		s.next = pts + s.interval
	}
	return true
}

const nalIDR = 5

// firstSlice returns the NAL unit type (1 or 5) of an Annex-B access unit's
// first slice and whether the picture is used for reference
// (nal_ref_idc != 0, the same for every slice of a picture), or type 0 if
// the unit has no slice.
func firstSlice(annexB []byte) (typ byte, ref bool) {
	for b := annexB; ; {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 || i+3 >= len(b) {
			return 0, false
		}
		h := b[i+3]
		if t := h & 0x1f; t == 1 || t == nalIDR {
			return t, h&0x60 != 0
		}
		b = b[i+3:]
	}
}
