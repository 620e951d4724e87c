package h264

import (
	"bytes"
	"testing"
)

func TestSplit(t *testing.T) {
	sps, pps := []byte{0x67, 1, 2}, []byte{0x68, 3}
	idr := []byte{0x65, 0x88, 4}  // first_mb_in_slice 0
	idr2 := []byte{0x65, 0x08, 5} // a second slice of the same picture
	p := []byte{0x41, 0x9a, 6}
	aud := []byte{0x09, 0xf0}
	stream := append([]byte{0, 0, 1}, aud...) // 3-byte start code
	stream = append(stream, AnnexB(sps, pps, idr, idr2, aud, p)...)
	stream = append(stream, 0, 0) // trailing zeros
	nals := NALUnits(stream)
	if len(nals) != 7 || !bytes.Equal(nals[6], p) || !bytes.Equal(nals[0], aud) {
		t.Fatalf("NALUnits = %x", nals)
	}
	aus := AccessUnits(stream)
	if len(aus) != 2 || len(aus[0]) != 4 || len(aus[1]) != 1 || Type(aus[1][0]) != 1 {
		t.Fatalf("AccessUnits = %x, want [SPS PPS IDR IDR] [P]", aus)
	}
	if got := NALUnits(nil); got != nil {
		t.Fatalf("NALUnits(nil) = %x", got)
	}
}

func FuzzNALUnits(f *testing.F) {
	f.Add(AnnexB([]byte{0x67, 1}, []byte{0x65, 0x88}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range NALUnits(b) {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
		}
		AccessUnits(b)
	})
}

func TestParamsComplete(t *testing.T) {
	var p Params
	sps, pps, idr, slice := []byte{0x67, 1}, []byte{0x68, 2}, []byte{0x65, 0x88}, []byte{0x41, 0x9a}
	if b, key := p.Complete([][]byte{sps, pps, idr}); !key || !bytes.Equal(b, AnnexB(sps, pps, idr)) {
		t.Fatalf("first keyframe: %x %v", b, key)
	}
	if b, key := p.Complete([][]byte{slice}); key || !bytes.Equal(b, AnnexB(slice)) {
		t.Fatalf("P-frame: %x %v", b, key)
	}
	if b, key := p.Complete([][]byte{idr}); !key || !bytes.Equal(b, AnnexB(sps, pps, idr)) {
		t.Fatalf("bare keyframe must get SPS and PPS: %x", b)
	}
}
