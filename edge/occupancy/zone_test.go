package occupancy

import (
	"image"
	"strings"
	"testing"
	"time"
)

func TestZoneValidate(t *testing.T) {
	ok := Zone{ID: "z", Rule: KeepClear, Polygon: []image.Point{{0, 0}, {10, 0}, {0, 10}}, Dwell: time.Second}
	for _, tc := range []struct {
		name   string
		mangle func(z *Zone)
		want   string // "" = valid
	}{
		{"valid", func(z *Zone) {}, ""},
		{"empty id", func(z *Zone) { z.ID = "" }, "empty id"},
		{"unknown rule", func(z *Zone) { z.Rule = "no_loitering" }, `rule "no_loitering"`},
		{"two points", func(z *Zone) { z.Polygon = z.Polygon[:2] }, "at least 3 points"},
		{"no dwell", func(z *Zone) { z.Dwell = 0 }, "dwell must be positive"},
		{"share above one", func(z *Zone) { z.MinShare = 1.5 }, "outside 0-1"},
		{"outside the frame", func(z *Zone) {
			z.Polygon = []image.Point{{200, 200}, {300, 200}, {300, 300}}
		}, "covers no pixel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := ok
			z.Polygon = append([]image.Point(nil), ok.Polygon...)
			tc.mangle(&z)
			err := z.Validate(100, 80)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := New([]Zone{ok, ok}, 100, 80); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate ids: got %v", err)
	}
}

func TestRasterize(t *testing.T) {
	for _, tc := range []struct {
		name string
		poly []image.Point
		want int
	}{
		{"rectangle", []image.Point{{10, 10}, {30, 10}, {30, 20}, {10, 20}}, 200},
		{"triangle", []image.Point{{0, 0}, {20, 0}, {0, 20}}, 190}, // centres with x+y < 19
		{"clipped at the frame", []image.Point{{-10, -10}, {10, -10}, {10, 10}, {-10, 10}}, 100},
		{"concave L", []image.Point{{0, 0}, {20, 0}, {20, 10}, {10, 10}, {10, 20}, {0, 20}}, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(rasterize(tc.poly, 100, 80)); got != tc.want {
				t.Errorf("%d pixels, want %d", got, tc.want)
			}
		})
	}
}
