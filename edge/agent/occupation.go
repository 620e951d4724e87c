package agent

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/decode"
	"github.com/gridwatch/gridwatch/edge/detect"
	"github.com/gridwatch/gridwatch/edge/occupancy"
	"github.com/gridwatch/gridwatch/edge/rtsp"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// occupation runs road-occupation detection on a camera's zones: every
// picture is decoded (P-frames need their references) but only FPS of them
// a second are converted, downscaled, and analysed.
type occupation struct {
	cam     *camera
	sampler *decode.Sampler
	dec     *decode.Decoder
	det     *occupancy.Detector
	objects *detect.Detector // the camera's own object detector, if configured
	scale   float64          // analysis pixels per stream pixel
	w, h    int              // analysis frame size
	session uint64
}

func newOccupation(c *camera) (*occupation, error) {
	cfg := c.cfg
	if len(cfg.Zones) == 0 {
		return nil, nil
	}
	dec, err := decode.NewH264()
	if err != nil {
		return nil, err
	}
	w := min(cfg.Occupancy.Width, cfg.Frame.W)
	h := cfg.Frame.H * w / cfg.Frame.W
	w, h = w&^1, h&^1 // the sampler keeps even sides
	scale := float64(w) / float64(cfg.Frame.W)
	zones := make([]occupancy.Zone, len(cfg.Zones))
	for i, z := range cfg.Zones {
		pts := make([]image.Point, len(z.Polygon))
		for j, p := range z.Polygon {
			pts[j] = image.Pt(int(float64(p[0])*scale), int(float64(p[1])*scale))
		}
		zones[i] = occupancy.Zone{ID: z.ID, Rule: z.Rule, Polygon: pts, Dwell: z.Dwell, MinShare: z.MinShare}
	}
	det, err := occupancy.New(zones, w, h)
	if err != nil {
		dec.Close()
		return nil, fmt.Errorf("camera %s zones: %w", cfg.ID, err)
	}
	var objects *detect.Detector
	if d := cfg.Detector; d != nil {
		objects, err = detect.Load(d.Model, d.SHA256, detect.Options{Input: d.Input, Layout: detect.Layout(d.Layout),
			Classes: d.Classes, Score: float32(d.Score), NMS: float32(d.NMS)})
		if err != nil {
			dec.Close()
			return nil, fmt.Errorf("camera %s detector: %w", cfg.ID, err)
		}
		c.log.Info("object detector loaded", "model", d.Model, "layout", d.Layout, "input", d.Input, "classes", d.Classes)
	}
	return &occupation{cam: c, dec: dec, det: det, objects: objects, scale: scale, w: w, h: h,
		sampler: decode.NewSampler(dec, cfg.Occupancy.FPS, w)}, nil
}

func (o *occupation) close() {
	o.dec.Close()
	if o.objects != nil {
		o.objects.Close()
	}
}

// feed gives the detector the access unit's due pictures.
func (o *occupation) feed(ctx context.Context, au rtsp.AccessUnit) {
	if au.Session != o.session {
		o.sampler.Reset()
		o.session = au.Session
	}
	samples, err := o.sampler.Decode(au.AnnexB, au.PTS)
	if err != nil {
		o.cam.log.Debug("occupancy: picture does not decode", "err", err)
		return
	}
	for _, s := range samples {
		if s.Width != o.w || s.Height != o.h {
			o.cam.log.Warn("occupancy: stream size differs from the configured frame", "got_w", s.Width, "got_h", s.Height)
			continue
		}
		o.analyse(ctx, s.BGR, s.Width, s.Height, au.Received)
	}
}

// analyse runs the occupancy detector on one analysis picture and reports
// the episodes it yields.
func (o *occupation) analyse(ctx context.Context, bgr []byte, w, h int, at time.Time) {
	o.cam.analysed.Add(1)
	for _, ep := range o.det.Step(bgr, at) {
		if err := o.report(ctx, ep, w, h); err != nil {
			o.cam.log.Error("occupation report not queued", "zone", ep.Zone, "err", err)
		}
	}
}

// object runs the camera's object detector on the episode's best frame,
// only when an episode starts or updates, and returns the detection that
// overlaps the occupied box most.
func (o *occupation) object(ep occupancy.Episode, w, h int) (detect.Detection, bool) {
	if o.objects == nil || ep.Phase == occupancy.PhaseEnd || len(ep.BestFrame) != w*h*3 {
		return detect.Detection{}, false
	}
	dets, err := o.objects.DetectBGR(ep.BestFrame, w, h)
	if err != nil {
		o.cam.log.Warn("object detector failed", "zone", ep.Zone, "err", err)
		return detect.Detection{}, false
	}
	return detect.Best(dets, ep.Box)
}

func (o *occupation) report(ctx context.Context, ep occupancy.Episode, w, h int) error {
	box := image.Rect(int(float64(ep.Box.Min.X)/o.scale), int(float64(ep.Box.Min.Y)/o.scale),
		int(float64(ep.Box.Max.X)/o.scale), int(float64(ep.Box.Max.Y)/o.scale))
	r := wire.Report{ID: fmt.Sprintf("%s-%s", o.cam.cfg.ID, ep.ID), Phase: wire.Phase(ep.Phase), Kind: wire.ReportOccupation,
		Camera: o.cam.cfg.ID, Zone: ep.Zone, Rule: ep.Rule, State: "occupied", Confidence: clamp(ep.Share * 2),
		ObservedAt: ep.At.UTC(), Lat: o.cam.cfg.Lat, Lon: o.cam.cfg.Lon,
		Box: []int{box.Min.X, box.Min.Y, max(box.Dx(), 1), max(box.Dy(), 1)}, Share: ep.Share}
	if r.Phase == wire.PhaseEnd {
		r.State = "clear"
	}
	obj, found := o.object(ep, w, h)
	if found {
		r.Object, r.ObjectScore = obj.Label, math.Round(float64(obj.Score)*1000)/1000
	}
	var files []file
	if r.Phase != wire.PhaseEnd && len(ep.BestFrame) == w*h*3 {
		var seen *detect.Detection
		if found {
			seen = &obj
		}
		clean, annotated, err := occupationJPEGs(ep, w, h, o.cam.cfg.Zones, o.scale, seen)
		if err != nil {
			return err
		}
		files = append(files, file{wire.EvidenceSnapshot, ".jpg", "image/jpeg", clean},
			file{wire.EvidenceAnnotated, ".jpg", "image/jpeg", annotated})
	}
	seq, err := o.cam.rep.queue(r, files...)
	if err != nil {
		return err
	}
	o.cam.log.Info("occupation report queued", "zone", ep.Zone, "rule", ep.Rule, "phase", ep.Phase,
		"share", fmt.Sprintf("%.2f", ep.Share), "object", r.Object, "seq", seq)
	if r.Phase == wire.PhaseNew {
		go o.cam.rep.clipLater(ctx, o.cam.ring, r, clipBefore, clipAfter)
	}
	return nil
}

// occupationJPEGs encodes the episode's best frame, clean and with the zone
// and the occupied box drawn, and what the object detector saw there.
func occupationJPEGs(ep occupancy.Episode, w, h int, zones []config.Zone, scale float64, seen *detect.Detection) (clean, annotated []byte, err error) {
	m, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, ep.BestFrame)
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	if clean, err = jpegOf(m); err != nil {
		return nil, nil, err
	}
	ann := m.Clone()
	defer ann.Close()
	for _, z := range zones {
		if z.ID != ep.Zone {
			continue
		}
		pts := make([]image.Point, len(z.Polygon))
		for i, p := range z.Polygon {
			pts[i] = image.Pt(int(float64(p[0])*scale), int(float64(p[1])*scale))
		}
		pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
		gocv.Polylines(&ann, pv, true, color.RGBA{240, 190, 20, 0}, 1)
		pv.Close()
	}
	gocv.Rectangle(&ann, ep.Box, color.RGBA{230, 30, 30, 0}, 2)
	gocv.PutText(&ann, fmt.Sprintf("%s %s %.0f%%", ep.Zone, ep.Rule, ep.Share*100), image.Pt(ep.Box.Min.X, max(ep.Box.Min.Y-4, 10)),
		gocv.FontHersheySimplex, 0.35, color.RGBA{230, 30, 30, 0}, 1)
	if seen != nil {
		gocv.Rectangle(&ann, seen.Box, color.RGBA{40, 200, 240, 0}, 1)
		gocv.PutText(&ann, fmt.Sprintf("%s %.2f", seen.Label, seen.Score), image.Pt(seen.Box.Min.X, min(seen.Box.Max.Y+10, h-2)),
			gocv.FontHersheySimplex, 0.35, color.RGBA{40, 200, 240, 0}, 1)
	}
	annotated, err = jpegOf(ann)
	return clean, annotated, err
}

func jpegOf(m gocv.Mat) ([]byte, error) {
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 85})
	if err != nil {
		return nil, fmt.Errorf("jpeg encode: %w", err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

func clamp(x float64) float64 { return max(0, min(1, x)) }
