package cdnet

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// decodeBMPGray reads an uncompressed Windows bitmap (8-bit paletted or
// 24/32-bit) into one grey byte per pixel. CDnet ships its region of
// interest as such a file; the standard library has no BMP decoder and the
// module deliberately carries no extra image dependency for it.
func decodeBMPGray(b []byte) (gray []byte, w, h int, err error) {
	if len(b) < 54 || b[0] != 'B' || b[1] != 'M' {
		return nil, 0, 0, errors.New("not a BMP file")
	}
	le := binary.LittleEndian
	off := int(le.Uint32(b[10:]))
	hdr := int(le.Uint32(b[14:]))
	if hdr < 40 {
		return nil, 0, 0, fmt.Errorf("unsupported BMP header size %d", hdr)
	}
	w = int(int32(le.Uint32(b[18:])))
	hs := int(int32(le.Uint32(b[22:])))
	bpp := int(le.Uint16(b[28:]))
	if comp := le.Uint32(b[30:]); comp != 0 && !(comp == 3 && bpp == 32) {
		return nil, 0, 0, fmt.Errorf("compressed BMP (method %d) not supported", comp)
	}
	topDown := hs < 0
	h = hs
	if topDown {
		h = -hs
	}
	if w <= 0 || h <= 0 || w > 1<<15 || h > 1<<15 {
		return nil, 0, 0, fmt.Errorf("bad BMP size %dx%d", w, h)
	}
	var pal [256]byte
	if bpp == 8 {
		n := int(le.Uint32(b[46:]))
		if n == 0 || n > 256 {
			n = 256
		}
		p := 14 + hdr
		for i := 0; i < n && p+i*4+3 <= len(b); i++ {
			c := b[p+i*4:]
			pal[i] = luma(c[2], c[1], c[0])
		}
	} else if bpp != 24 && bpp != 32 {
		return nil, 0, 0, fmt.Errorf("unsupported BMP depth %d", bpp)
	}
	stride := (w*bpp/8 + 3) &^ 3
	if off < 0 || off+stride*h > len(b) {
		return nil, 0, 0, errors.New("truncated BMP")
	}
	gray = make([]byte, w*h)
	for y := 0; y < h; y++ {
		sy := h - 1 - y
		if topDown {
			sy = y
		}
		row := b[off+sy*stride:]
		for x := 0; x < w; x++ {
			switch bpp {
			case 8:
				gray[y*w+x] = pal[row[x]]
			default:
				k := x * bpp / 8
				gray[y*w+x] = luma(row[k+2], row[k+1], row[k])
			}
		}
	}
	return gray, w, h, nil
}

func luma(r, g, b byte) byte {
	return byte((299*int(r) + 587*int(g) + 114*int(b) + 500) / 1000)
}
