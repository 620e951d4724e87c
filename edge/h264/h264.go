// Package h264 splits H.264 Annex-B elementary streams: into NAL units, and
// NAL units into access units (one picture each). Pure Go, so the decoder's
// tests, the clip muxer and the decode benchmark share one splitter.
package h264

// NAL unit types used by gridwatch.
const (
	NALIDR = 5
	NALSEI = 6
	NALSPS = 7
	NALPPS = 8
	NALAUD = 9
)

// Type is a NAL unit's type.
func Type(n []byte) byte { return n[0] & 0x1f }

// NALUnits splits Annex-B into non-empty NAL units without start codes; the
// units alias b. The zero byte of a 4-byte start code and trailing zeros are
// not part of a unit.
func NALUnits(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	add := func(end int) {
		for end > start && b[end-1] == 0 {
			end--
		}
		if end > start {
			nals = append(nals, b[start:end])
		}
	}
	for i := 0; i+2 < len(b); {
		if b[i+2] > 1 { // no start code can end at i+2
			i += 3
			continue
		}
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				add(i)
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 {
		add(len(b))
	}
	return nals
}

// AccessUnits groups a stream's NAL units into access units. A new unit
// starts at an access unit delimiter (which is dropped, as RTSP cameras do),
// at SEI/SPS/PPS after a slice, or at a slice whose first_mb_in_slice is 0
// (the first bit of its header set).
func AccessUnits(stream []byte) [][][]byte {
	var (
		aus     [][][]byte
		cur     [][]byte
		seenVCL bool
	)
	flush := func() {
		if len(cur) > 0 {
			aus = append(aus, cur)
		}
		cur, seenVCL = nil, false
	}
	for _, n := range NALUnits(stream) {
		switch typ := Type(n); {
		case typ == NALAUD:
			flush()
			continue
		case typ == NALSEI || typ == NALSPS || typ == NALPPS:
			if seenVCL {
				flush()
			}
		case typ >= 1 && typ <= NALIDR:
			if seenVCL && len(n) > 1 && n[1]&0x80 != 0 {
				flush()
			}
			seenVCL = true
		}
		cur = append(cur, n)
	}
	flush()
	return aus
}

// AnnexB joins NAL units with 4-byte start codes.
func AnnexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

// Params remembers the latest SPS and PPS of a stream so that every
// keyframe can be made decodable on its own.
type Params struct {
	sps, pps []byte
}

// Complete returns an access unit as Annex-B, with the stream's SPS and PPS
// in front if it is a keyframe that lacks them, and whether it is a keyframe.
func (p *Params) Complete(au [][]byte) (annexB []byte, keyframe bool) {
	hasSPS, hasPPS := false, false
	for _, n := range au {
		switch Type(n) {
		case NALIDR:
			keyframe = true
		case NALSPS:
			p.sps, hasSPS = n, true
		case NALPPS:
			p.pps, hasPPS = n, true
		}
	}
	if keyframe && !hasSPS && p.sps != nil {
		annexB = AnnexB(p.sps)
	}
	if keyframe && !hasPPS && p.pps != nil {
		annexB = append(annexB, AnnexB(p.pps)...)
	}
	return append(annexB, AnnexB(au...)...), keyframe
}
