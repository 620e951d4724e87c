package rtsp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// H.264 NAL unit types we look at.
const (
	nalIDR = 5
	nalSPS = 7
	nalPPS = 8
)

var startCode = []byte{0, 0, 0, 1}

// splitAVCC splits length-prefixed NAL units (4-byte big-endian sizes, the
// format of rtspv2's av.Packet.Data) into the units themselves, which alias b.
func splitAVCC(b []byte) ([][]byte, error) {
	var nals [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("avcc: %d trailing bytes", len(b))
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if n == 0 || uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("avcc: nal size %d with %d bytes left", n, len(b))
		}
		nals = append(nals, b[:n])
		b = b[n:]
	}
	if len(nals) == 0 {
		return nil, errors.New("avcc: empty packet")
	}
	return nals, nil
}

// rtpWrap is the period of rtspv2's packet times: it reports the 32-bit,
// 90 kHz RTP timestamp as time.Duration(ts/90) * time.Millisecond.
const rtpWrap = time.Duration(1<<32/90) * time.Millisecond

// assembler turns rtspv2's packets (one per slice) into access units:
// consecutive packets with the same timestamp are one picture. A unit is
// complete only when a packet with a new timestamp arrives, so units come out
// one frame interval late.
type assembler struct {
	sps, pps []byte // latest parameter sets, from the SDP or in-band

	// Stream time: the first packet of the session is 0; wraps of the RTP
	// clock (every 13.25 h) are unwrapped.
	started bool
	base    time.Duration
	last    time.Duration
	wraps   time.Duration

	pending  bool
	raw      time.Duration
	received time.Time
	nals     [][]byte
	size     int
}

func (a *assembler) setParams(sps, pps []byte) {
	if len(sps) > 0 && sps[0]&0x1f == nalSPS {
		a.sps = sps
	}
	if len(pps) > 0 && pps[0]&0x1f == nalPPS {
		a.pps = pps
	}
}

// push adds one packet's NAL units. It returns the previous access unit when
// this packet starts a new one.
func (a *assembler) push(raw time.Duration, nals [][]byte, now time.Time) (AccessUnit, bool) {
	var (
		out  AccessUnit
		done bool
	)
	if a.pending && raw != a.raw {
		out, done = a.finish()
	}
	if !a.pending {
		a.pending, a.raw, a.received = true, raw, now
	}
	for _, n := range nals {
		// In-band parameter sets replace the SDP's for later keyframes. (rtspv2
		// currently swallows them into its CodecData, but don't depend on it.)
		switch n[0] & 0x1f {
		case nalSPS:
			a.sps = n
		case nalPPS:
			a.pps = n
		}
		a.nals = append(a.nals, n)
		a.size += len(startCode) + len(n)
	}
	return out, done
}

// flush returns the unit being collected, if any, and forgets it.
func (a *assembler) flush() (AccessUnit, bool) {
	if !a.pending {
		return AccessUnit{}, false
	}
	return a.finish()
}

// discard drops the unit being collected (it may be incomplete).
func (a *assembler) discard() {
	a.pending, a.nals, a.size = false, a.nals[:0], 0
}

func (a *assembler) finish() (AccessUnit, bool) {
	key, hasSPS, hasPPS := false, false, false
	for _, n := range a.nals {
		switch n[0] & 0x1f {
		case nalIDR:
			key = true
		case nalSPS:
			hasSPS = true
		case nalPPS:
			hasPPS = true
		}
	}
	size := a.size
	prependSPS := key && !hasSPS && len(a.sps) > 0
	prependPPS := key && !hasPPS && len(a.pps) > 0
	if prependSPS {
		size += len(startCode) + len(a.sps)
	}
	if prependPPS {
		size += len(startCode) + len(a.pps)
	}
	b := make([]byte, 0, size)
	if prependSPS {
		b = append(append(b, startCode...), a.sps...)
	}
	if prependPPS {
		b = append(append(b, startCode...), a.pps...)
	}
	for _, n := range a.nals {
		b = append(append(b, startCode...), n...)
	}
	au := AccessUnit{
		Keyframe: key,
		AnnexB:   b,
		PTS:      a.streamTime(a.raw),
		Received: a.received,
	}
	clear(a.nals) // let the packet buffers go
	a.discard()
	return au, true
}

func (a *assembler) streamTime(raw time.Duration) time.Duration {
	if !a.started {
		a.started, a.base, a.last = true, raw, raw
	}
	switch {
	case raw < a.last-rtpWrap/2:
		a.wraps += rtpWrap
	case raw > a.last+rtpWrap/2 && a.wraps > 0:
		// A late unit from before the wrap.
		return raw + a.wraps - rtpWrap - a.base
	}
	a.last = raw
	return raw + a.wraps - a.base
}
