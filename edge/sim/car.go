package sim

import "math"

// sunDir is where shadows fall on the road (unit vector in X, D) and
// sunTan is the tangent of the sun's elevation: a thing of height h casts
// its shadow h/sunTan metres along sunDir. The light comes from the right
// and slightly behind the camera, so shadows lean left and away.
var sunDir = vec3{X: -0.6, D: 0.8}

const sunTan = 1.2

func shadowOf(p vec3) vec3 {
	return vec3{X: p.X + sunDir.X*p.H/sunTan, D: p.D + sunDir.D*p.H/sunTan}
}

// car is a vehicle driving away from the camera along a lane at constant
// speed; its centre is at depth dc at time tc.
type car struct {
	x     float64 // lane position of its centre line, metres
	dc    float64 // depth of the cover it drives over, metres
	tc    float64 // when its centre passes dc, seconds
	v     float64 // speed, m/s
	width float64
	len   float64
	col   rgb
	hold  float64 // seconds it stands still at dc from tc (a stop, or parking)
}

// rear is the depth of the car's rear bumper at time t.
func (k car) rear(t float64) float64 {
	dt := t - k.tc
	if dt > 0 {
		dt = math.Max(0, dt-k.hold)
	}
	return k.dc + k.v*dt - k.len/2
}

// moving reports whether the car is driving (not standing) at t.
func (k car) moving(t float64) bool { return t < k.tc || t >= k.tc+k.hold }

// visible reports whether any part of the car can be in the picture at t:
// nearer than 8 m it is below the frame even counting its roof, and past
// 120 m it has shrunk above the top edge.
func (k car) visible(t float64) bool {
	r := k.rear(t)
	return r+k.len > 8 && r < 120
}

// solids returns the car's faces in painter's order, and how many of them
// are body (the rest are decals lying on the body: lights, plate, glass).
func (k car) solids(t float64) (body, decals []face) {
	w, l, x, d := k.width, k.len, k.x, k.rear(t)
	hw := w / 2
	dark := rgb{24, 24, 26}
	tyre := rgb{16, 16, 18}
	body = append(body, box(x-hw+0.12, x+hw-0.12, d+0.2, d+l-0.2, 0, 0.4, dark)...)
	for _, xs := range [][2]float64{{x - hw + 0.02, x - hw + 0.26}, {x + hw - 0.26, x + hw - 0.02}} {
		for _, ds := range [][2]float64{{d + 0.55, d + 1.25}, {d + l - 1.35, d + l - 0.65}} {
			body = append(body, box(xs[0], xs[1], ds[0], ds[1], 0, 0.64, tyre)...)
		}
	}
	shell := frustum(x-hw, x+hw, d, d+l, 0.32, x-hw+0.07, x+hw-0.07, d+0.1, d+l-0.12, 0.95, k.col)
	body = append(body, shell...)
	cabin := frustum(x-hw+0.1, x+hw-0.1, d+1.0, d+l-1.45, 0.95, x-hw+0.26, x+hw-0.26, d+1.45, d+l-1.95, 1.45, k.col)
	body = append(body, cabin...)

	// Faces from frustum: 0 top, 1 rear, 2 right, 3 front, 4 left.
	glass := rgb{34, 40, 48}
	rearFace := shell[1]
	decals = append(decals,
		plate(rearFace, 0, 1, 0, 0.2, rgb{38, 38, 40}),              // bumper
		plate(rearFace, 0.04, 0.22, 0.58, 0.86, rgb{190, 28, 30}),   // tail lights
		plate(rearFace, 0.78, 0.96, 0.58, 0.86, rgb{190, 28, 30}),   //
		plate(rearFace, 0.39, 0.61, 0.27, 0.52, rgb{30, 70, 170}),   // number plate
		plate(rearFace, 0.42, 0.58, 0.32, 0.47, rgb{200, 205, 210}), // its characters, as one light block
	)
	for _, i := range []int{1, 2, 3, 4} {
		decals = append(decals, plate(cabin[i], 0.1, 0.9, 0.12, 0.92, glass.mul(faceShade[i]+0.15)))
	}
	decals = append(decals, plate(cabin[0], 0.15, 0.85, 0.25, 0.75, k.col.mul(1.08).plus(8))) // roof sheen
	// Panel gaps of the boot lid and bonnet, where the cabin meets the body.
	gap := k.col.mul(0.55)
	trunk, bonnet := 0.95/l, (l-1.4)/l
	decals = append(decals,
		plate(shell[0], 0.04, 0.96, trunk, trunk+0.012, gap),
		plate(shell[0], 0.04, 0.96, bonnet, bonnet+0.012, gap))
	return body, decals
}

// draw paints the car's shadow and body onto cv.
func (k car) draw(cv canvas, cam camera, t, shadowK float64) {
	if !k.visible(t) {
		return
	}
	w, l, d := k.width, k.len, k.rear(t)
	hw := w / 2
	var pts []pt
	for _, c := range []vec3{
		{k.x - hw, d, 0}, {k.x + hw, d, 0}, {k.x + hw, d + l, 0}, {k.x - hw, d + l, 0},
		{k.x - hw + 0.26, d + 1.45, 1.45}, {k.x + hw - 0.26, d + 1.45, 1.45},
		{k.x + hw - 0.26, d + l - 1.95, 1.45}, {k.x - hw + 0.26, d + l - 1.95, 1.45},
		{k.x - hw, d + 0.3, 0.9}, {k.x + hw, d + 0.3, 0.9}, {k.x + hw, d + l - 0.3, 0.9}, {k.x - hw, d + l - 0.3, 0.9},
	} {
		s := shadowOf(c)
		if s.D < 1 {
			return
		}
		pts = append(pts, cam.project(s))
	}
	if shadowK < 1 {
		cv.darkenPoly(convexHull(pts), shadowK, 4)
	}
	// Contact shadow: almost no light reaches the road under the car.
	under := []pt{
		cam.project(vec3{k.x - hw + 0.1, d + 0.2, 0}), cam.project(vec3{k.x + hw - 0.1, d + 0.2, 0}),
		cam.project(vec3{k.x + hw - 0.1, d + l - 0.2, 0}), cam.project(vec3{k.x - hw + 0.1, d + l - 0.2, 0}),
	}
	cv.darkenPoly(under, 0.3, 2)

	body, decals := k.solids(t)
	for _, f := range append(body, decals...) {
		if p, ok := cam.screen(f); ok {
			cv.fillPoly(p, f.col, 1, 1)
		}
	}
}
