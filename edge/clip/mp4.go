package clip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gridwatch/gridwatch/edge/h264"
	"math"
	"slices"
	"time"

	"github.com/deepch/vdk/codec/h264parser"
)

// timescale is the media clock of the clips: 90 kHz, the RTP clock of H.264,
// so that camera timestamps convert without rounding.
const timescale = 90000

// movieTimescale is the clock of the movie and track headers.
const movieTimescale = 1000

// defaultFrame is the duration given to the last sample of a clip with a
// single frame, where no neighbour tells the frame interval.
const defaultFrame = 40 * time.Millisecond

// NAL unit types we look at.
const (
	nalIDR = 5
	nalSPS = 7
	nalPPS = 8
	nalAUD = 9
)

// sample is one access unit as it goes into the MP4: its NAL units (aliasing
// the ring's Annex-B) and times.
type sample struct {
	nals []([]byte)
	size int // bytes in mdat: a 4-byte length before each NAL unit
	key  bool
	pts  time.Duration
}

// muxMP4 writes units (decode order, one session, a keyframe first) as an
// MP4 and returns it with its duration and number of frames (units without
// picture data are left out): ftyp, then moov with the sample index, then one mdat holding every
// sample in one chunk. The index goes first so that a browser can start
// playing the clip before the whole file has arrived. It is not fragmented:
// vdk's demuxer and many tools read plain MP4 only.
func muxMP4(units []unit) ([]byte, time.Duration, int, error) {
	if len(units) == 0 {
		return nil, 0, 0, ErrEmpty
	}
	if !units[0].key {
		return nil, 0, 0, errors.New("clip: first unit is not a keyframe")
	}
	var spss, ppss [][]byte
	for _, n := range h264.NALUnits(units[0].data) {
		switch n[0] & 0x1f {
		case nalSPS:
			if !containsBytes(spss, n) {
				spss = append(spss, n)
			}
		case nalPPS:
			if !containsBytes(ppss, n) {
				ppss = append(ppss, n)
			}
		}
	}
	if len(spss) == 0 || len(ppss) == 0 {
		return nil, 0, 0, errors.New("clip: keyframe without SPS and PPS")
	}
	info, err := h264parser.ParseSPS(spss[0])
	if err != nil {
		return nil, 0, 0, fmt.Errorf("clip: parse sps: %w", err)
	}
	width, height := int(info.Width), int(info.Height)
	if width <= 0 || height <= 0 || width > 16384 || height > 16384 {
		return nil, 0, 0, fmt.Errorf("clip: sps gives a %dx%d picture", width, height)
	}

	samples := make([]sample, 0, len(units))
	var mdatSize int64
	for _, u := range units {
		s := sample{key: u.key, pts: u.pts}
		for _, n := range h264.NALUnits(u.data) {
			switch n[0] & 0x1f {
			case nalAUD:
				continue
			case nalSPS:
				if containsBytes(spss, n) { // in avcC already
					continue
				}
			case nalPPS:
				if containsBytes(ppss, n) {
					continue
				}
			}
			s.nals = append(s.nals, n)
			s.size += 4 + len(n)
		}
		if s.size == 0 {
			continue
		}
		samples = append(samples, s)
		mdatSize += int64(s.size)
	}
	if len(samples) == 0 || !samples[0].key {
		return nil, 0, 0, errors.New("clip: no picture data")
	}
	if mdatSize+8 > math.MaxUint32 {
		return nil, 0, 0, fmt.Errorf("clip: %d bytes of samples is too large for one mdat", mdatSize)
	}

	durs, ctos := timing(samples)
	var total uint64
	for _, d := range durs {
		total += uint64(d)
	}
	duration := time.Duration(total) * time.Second / timescale

	var w boxWriter
	ftyp := w.start("ftyp")
	w.str("isom")
	w.u32(0x200)
	w.str("isom")
	w.str("iso2")
	w.str("avc1")
	w.str("mp41")
	w.end(ftyp)

	moov := w.start("moov")
	mvhd := w.full("mvhd", 0, 0)
	w.u32(0) // creation time
	w.u32(0) // modification time
	w.u32(movieTimescale)
	w.u32(uint32(duration.Milliseconds()))
	w.u32(0x00010000) // rate 1.0
	w.u16(0x0100)     // volume 1.0
	w.zero(10)
	w.matrix()
	w.zero(24)
	w.u32(2) // next track id
	w.end(mvhd)

	trak := w.start("trak")
	tkhd := w.full("tkhd", 0, 3) // enabled, in movie
	w.u32(0)
	w.u32(0)
	w.u32(1) // track id
	w.u32(0)
	w.u32(uint32(duration.Milliseconds()))
	w.zero(8)
	w.u16(0) // layer
	w.u16(0) // alternate group
	w.u16(0) // volume: video
	w.u16(0)
	w.matrix()
	w.u32(uint32(width) << 16)
	w.u32(uint32(height) << 16)
	w.end(tkhd)

	mdia := w.start("mdia")
	mdhd := w.full("mdhd", 0, 0)
	w.u32(0)
	w.u32(0)
	w.u32(timescale)
	w.u32(uint32(min(total, math.MaxUint32)))
	w.u16(0x55c4) // language "und"
	w.u16(0)
	w.end(mdhd)
	hdlr := w.full("hdlr", 0, 0)
	w.u32(0)
	w.str("vide")
	w.zero(12)
	w.str("VideoHandler\x00")
	w.end(hdlr)

	minf := w.start("minf")
	vmhd := w.full("vmhd", 0, 1)
	w.zero(8) // graphics mode, opcolor
	w.end(vmhd)
	dinf := w.start("dinf")
	dref := w.full("dref", 0, 0)
	w.u32(1)
	url := w.full("url ", 0, 1) // media data in this file
	w.end(url)
	w.end(dref)
	w.end(dinf)

	stbl := w.start("stbl")
	stsd := w.full("stsd", 0, 0)
	w.u32(1)
	avc1 := w.start("avc1")
	w.zero(6)
	w.u16(1) // data reference index
	w.zero(16)
	w.u16(uint16(width))
	w.u16(uint16(height))
	w.u32(0x00480000) // 72 dpi
	w.u32(0x00480000)
	w.u32(0)
	w.u16(1) // frame count
	w.zero(32)
	w.u16(0x0018) // depth
	w.u16(0xffff)
	avcC := w.start("avcC")
	w.b = appendAVCC(w.b, spss, ppss)
	w.end(avcC)
	w.end(avc1)
	w.end(stsd)

	stts := w.full("stts", 0, 0)
	w.runs(durs)
	w.end(stts)

	if slices.ContainsFunc(ctos, func(c uint32) bool { return c != 0 }) {
		ctts := w.full("ctts", 0, 0)
		w.runs(ctos)
		w.end(ctts)
	}

	stss := w.full("stss", 0, 0)
	n := w.reserve32()
	entries := 0
	for i, s := range samples {
		if s.key {
			w.u32(uint32(i + 1))
			entries++
		}
	}
	w.put32(n, uint32(entries))
	w.end(stss)

	stsc := w.full("stsc", 0, 0) // everything in one chunk
	w.u32(1)
	w.u32(1)
	w.u32(uint32(len(samples)))
	w.u32(1)
	w.end(stsc)

	stsz := w.full("stsz", 0, 0)
	w.u32(0) // sizes follow
	w.u32(uint32(len(samples)))
	for _, s := range samples {
		w.u32(uint32(s.size))
	}
	w.end(stsz)

	stco := w.full("stco", 0, 0)
	w.u32(1)
	chunkOffset := w.reserve32()
	w.end(stco)

	w.end(stbl)
	w.end(minf)
	w.end(mdia)
	w.end(trak)
	w.end(moov)

	if int64(len(w.b))+8+mdatSize > math.MaxUint32 {
		return nil, 0, 0, errors.New("clip: too large for 32-bit chunk offsets")
	}
	w.put32(chunkOffset, uint32(len(w.b)+8))
	out := make([]byte, len(w.b), len(w.b)+8+int(mdatSize))
	copy(out, w.b)
	out = binary.BigEndian.AppendUint32(out, uint32(8+mdatSize))
	out = append(out, "mdat"...)
	for _, s := range samples {
		for _, nal := range s.nals {
			out = binary.BigEndian.AppendUint32(out, uint32(len(nal)))
			out = append(out, nal...)
		}
	}
	return out, duration, len(samples), nil
}

// timing gives each sample (decode order) its duration and composition
// offset in timescale ticks. Decode times are the presentation times sorted,
// delayed just enough that no frame is shown before it is decoded; without
// B-frames that is no delay and every offset is 0. The last sample lasts as
// long as the one before it.
func timing(samples []sample) (durs, ctos []uint32) {
	n := len(samples)
	pts := make([]int64, n)
	for i, s := range samples {
		pts[i] = ticks(s.pts - samples[0].pts)
	}
	dts := slices.Clone(pts)
	slices.Sort(dts)
	// Equal (or millisecond-rounded) times would give zero durations, which
	// players mishandle: keep decode times strictly increasing.
	for i := 1; i < n; i++ {
		if dts[i] <= dts[i-1] {
			dts[i] = dts[i-1] + 1
		}
	}
	var shift int64
	for i := range n {
		shift = max(shift, dts[i]-pts[i])
	}
	durs = make([]uint32, n)
	ctos = make([]uint32, n)
	for i := range n {
		switch {
		case i+1 < n:
			durs[i] = uint32(min(dts[i+1]-dts[i], math.MaxUint32))
		case n > 1:
			durs[i] = durs[i-1]
		default:
			durs[i] = uint32(ticks(defaultFrame))
		}
		ctos[i] = uint32(min(max(pts[i]-dts[i]+shift, 0), math.MaxUint32))
	}
	return durs, ctos
}

func ticks(d time.Duration) int64 {
	return int64(d) * timescale / int64(time.Second)
}

// appendAVCC appends an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 5.3.3.1) with 4-byte NAL unit lengths.
func appendAVCC(b []byte, spss, ppss [][]byte) []byte {
	sps := spss[0]
	var profile, compat, level byte
	if len(sps) >= 4 {
		profile, compat, level = sps[1], sps[2], sps[3]
	}
	b = append(b, 1, profile, compat, level, 0xfc|3, 0xe0|byte(min(len(spss), 31)))
	for _, s := range spss[:min(len(spss), 31)] {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(min(len(ppss), 255)))
	for _, p := range ppss[:min(len(ppss), 255)] {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

func containsBytes(set [][]byte, b []byte) bool {
	return slices.ContainsFunc(set, func(s []byte) bool { return bytes.Equal(s, b) })
}

// boxWriter builds ISO BMFF boxes in one buffer.
type boxWriter struct{ b []byte }

// start opens a box; end closes it by writing its size.
func (w *boxWriter) start(typ string) int {
	pos := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0)
	w.b = append(w.b, typ...)
	return pos
}

// full opens a full box (version and flags after the type).
func (w *boxWriter) full(typ string, version byte, flags uint32) int {
	pos := w.start(typ)
	w.u32(uint32(version)<<24 | flags&0xffffff)
	return pos
}

func (w *boxWriter) end(pos int) { w.put32(pos, uint32(len(w.b)-pos)) }

func (w *boxWriter) u16(v uint16)   { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *boxWriter) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *boxWriter) str(s string)   { w.b = append(w.b, s...) }
func (w *boxWriter) zero(n int)     { w.b = append(w.b, make([]byte, n)...) }
func (w *boxWriter) reserve32() int { w.u32(0); return len(w.b) - 4 }

// runs writes vals run-length encoded as stts and ctts want them: an entry
// count, then (run length, value) per run of equal values.
func (w *boxWriter) runs(vals []uint32) {
	n := w.reserve32()
	entries := 0
	for i := 0; i < len(vals); {
		j := i
		for j < len(vals) && vals[j] == vals[i] {
			j++
		}
		w.u32(uint32(j - i))
		w.u32(vals[i])
		entries++
		i = j
	}
	w.put32(n, uint32(entries))
}

func (w *boxWriter) put32(pos int, v uint32) { binary.BigEndian.PutUint32(w.b[pos:], v) }

// matrix writes the identity transformation matrix.
func (w *boxWriter) matrix() {
	for _, v := range []uint32{0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000} {
		w.u32(v)
	}
}
