package change

// Fast paths of the 3×3, stride-1 convolution (the bulk of the network's
// work): all nine taps of an input channel are summed in one pass over the
// interior of the image, the few border pixels go through tapAt.

// conv3Acc adds the 3×3 convolution (dilation d, zero padding) of src with
// w to dst; both are h×w planes.
func conv3Acc(dst, src []float32, k *[9]float32, h, w, d int) {
	w0, w1, w2, w3, w4, w5, w6, w7, w8 := k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
	n := w - 2*d
	for y := 0; y < h; y++ {
		if y < d || y >= h-d || n <= 0 {
			for x := 0; x < w; x++ {
				dst[y*w+x] += tapAt(src, k, h, w, d, y, x)
			}
			continue
		}
		r0, r1, r2 := src[(y-d)*w:(y-d+1)*w], src[y*w:(y+1)*w], src[(y+d)*w:(y+d+1)*w]
		a0, a1, a2 := r0[0:n], r0[d:d+n], r0[2*d:2*d+n]
		b0, b1, b2 := r1[0:n], r1[d:d+n], r1[2*d:2*d+n]
		c0, c1, c2 := r2[0:n], r2[d:d+n], r2[2*d:2*d+n]
		dd := dst[y*w+d : y*w+d+n]
		for j := range dd {
			dd[j] += w0*a0[j] + w1*a1[j] + w2*a2[j] + w3*b0[j] + w4*b1[j] + w5*b2[j] + w6*c0[j] + w7*c1[j] + w8*c2[j]
		}
		for x := 0; x < d; x++ {
			dst[y*w+x] += tapAt(src, k, h, w, d, y, x)
			dst[y*w+w-1-x] += tapAt(src, k, h, w, d, y, w-1-x)
		}
	}
}

// tapAt is the 3×3 convolution at one pixel, with bounds checks.
func tapAt(src []float32, k *[9]float32, h, w, d, y, x int) float32 {
	var s float32
	for ky := 0; ky < 3; ky++ {
		sy := y + (ky-1)*d
		if sy < 0 || sy >= h {
			continue
		}
		for kx := 0; kx < 3; kx++ {
			sx := x + (kx-1)*d
			if sx < 0 || sx >= w {
				continue
			}
			s += k[ky*3+kx] * src[sy*w+sx]
		}
	}
	return s
}

// conv3Grad adds to acc the gradient of each of the nine weights: Σ g·src
// shifted by the tap's offset.
func conv3Grad(acc *[9]float32, g, src []float32, h, w, d int) {
	var s0, s1, s2, s3, s4, s5, s6, s7, s8 float32
	n := w - 2*d
	for y := 0; y < h; y++ {
		if y < d || y >= h-d || n <= 0 {
			for x := 0; x < w; x++ {
				gradAt(acc, g[y*w+x], src, h, w, d, y, x)
			}
			continue
		}
		r0, r1, r2 := src[(y-d)*w:(y-d+1)*w], src[y*w:(y+1)*w], src[(y+d)*w:(y+d+1)*w]
		a0, a1, a2 := r0[0:n], r0[d:d+n], r0[2*d:2*d+n]
		b0, b1, b2 := r1[0:n], r1[d:d+n], r1[2*d:2*d+n]
		c0, c1, c2 := r2[0:n], r2[d:d+n], r2[2*d:2*d+n]
		gg := g[y*w+d : y*w+d+n]
		for j, v := range gg {
			s0 += v * a0[j]
			s1 += v * a1[j]
			s2 += v * a2[j]
			s3 += v * b0[j]
			s4 += v * b1[j]
			s5 += v * b2[j]
			s6 += v * c0[j]
			s7 += v * c1[j]
			s8 += v * c2[j]
		}
		for x := 0; x < d; x++ {
			gradAt(acc, g[y*w+x], src, h, w, d, y, x)
			gradAt(acc, g[y*w+w-1-x], src, h, w, d, y, w-1-x)
		}
	}
	acc[0] += s0
	acc[1] += s1
	acc[2] += s2
	acc[3] += s3
	acc[4] += s4
	acc[5] += s5
	acc[6] += s6
	acc[7] += s7
	acc[8] += s8
}

func gradAt(acc *[9]float32, g float32, src []float32, h, w, d, y, x int) {
	if g == 0 {
		return
	}
	for ky := 0; ky < 3; ky++ {
		sy := y + (ky-1)*d
		if sy < 0 || sy >= h {
			continue
		}
		for kx := 0; kx < 3; kx++ {
			sx := x + (kx-1)*d
			if sx < 0 || sx >= w {
				continue
			}
			acc[ky*3+kx] += g * src[sy*w+sx]
		}
	}
}

// conv3Acc2 is conv3Acc for two output planes at once: each input value is
// loaded once for both.
func conv3Acc2(dst0, dst1, src []float32, k0, k1 *[9]float32, h, w, d int) {
	n := w - 2*d
	if h <= 2*d || n <= 0 {
		conv3Acc(dst0, src, k0, h, w, d)
		conv3Acc(dst1, src, k1, h, w, d)
		return
	}
	p0, p1, p2, p3, p4, p5, p6, p7, p8 := k0[0], k0[1], k0[2], k0[3], k0[4], k0[5], k0[6], k0[7], k0[8]
	q0, q1, q2, q3, q4, q5, q6, q7, q8 := k1[0], k1[1], k1[2], k1[3], k1[4], k1[5], k1[6], k1[7], k1[8]
	for y := 0; y < h; y++ {
		if y < d || y >= h-d {
			for x := 0; x < w; x++ {
				dst0[y*w+x] += tapAt(src, k0, h, w, d, y, x)
				dst1[y*w+x] += tapAt(src, k1, h, w, d, y, x)
			}
			continue
		}
		r0, r1, r2 := src[(y-d)*w:(y-d+1)*w], src[y*w:(y+1)*w], src[(y+d)*w:(y+d+1)*w]
		a0, a1, a2 := r0[0:n], r0[d:d+n], r0[2*d:2*d+n]
		b0, b1, b2 := r1[0:n], r1[d:d+n], r1[2*d:2*d+n]
		c0, c1, c2 := r2[0:n], r2[d:d+n], r2[2*d:2*d+n]
		e0 := dst0[y*w+d : y*w+d+n]
		e1 := dst1[y*w+d : y*w+d+n]
		for j := range e0 {
			va0, va1, va2 := a0[j], a1[j], a2[j]
			vb0, vb1, vb2 := b0[j], b1[j], b2[j]
			vc0, vc1, vc2 := c0[j], c1[j], c2[j]
			e0[j] += p0*va0 + p1*va1 + p2*va2 + p3*vb0 + p4*vb1 + p5*vb2 + p6*vc0 + p7*vc1 + p8*vc2
			e1[j] += q0*va0 + q1*va1 + q2*va2 + q3*vb0 + q4*vb1 + q5*vb2 + q6*vc0 + q7*vc1 + q8*vc2
		}
		for x := 0; x < d; x++ {
			dst0[y*w+x] += tapAt(src, k0, h, w, d, y, x)
			dst0[y*w+w-1-x] += tapAt(src, k0, h, w, d, y, w-1-x)
			dst1[y*w+x] += tapAt(src, k1, h, w, d, y, x)
			dst1[y*w+w-1-x] += tapAt(src, k1, h, w, d, y, w-1-x)
		}
	}
}
