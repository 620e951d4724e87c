package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
)

func TestOpenCasesWithKeyPrefix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		made := []struct{ key, status string }{
			{"device:box-a", "closed"},
			{"device:box-a", "dispatched"},
			{"device:box-a/cam1", "on_hold"},
			{"device:box_b", "reported"}, // '_' is a LIKE wildcard: it must match only itself
			{"devices:box-a", "dispatched"},
			{"cover:1101050105000123", "dispatched"},
			{"device:box-c", "voided"},
		}
		ids := map[string]int64{}
		err := s.Update(ctx, func(tx *store.Tx) error {
			for _, m := range made {
				c := coverCase(m.key, m.status)
				if err := tx.CreateCase(ctx, &c); err != nil {
					return err
				}
				ids[m.key+" "+m.status] = c.ID
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			{"device:", []string{"device:box-a dispatched", "device:box-a/cam1 on_hold", "device:box_b reported"}},
			{"device:box-a", []string{"device:box-a dispatched", "device:box-a/cam1 on_hold"}},
			{"device:box-a/", []string{"device:box-a/cam1 on_hold"}},
			{"device:boxXb", nil},
			{"device:box-c", nil},
		}
		for _, tt := range tests {
			got, err := s.OpenCasesWithKeyPrefix(ctx, tt.prefix)
			if err != nil {
				t.Fatalf("%q: %v", tt.prefix, err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("%q: %d cases, want %v", tt.prefix, len(got), tt.want)
				continue
			}
			for i, w := range tt.want {
				if got[i].ID != ids[w] {
					t.Errorf("%q: case %d is %d (%s %s), want %s", tt.prefix, i, got[i].ID, got[i].IncidentKey, got[i].Status, w)
				}
			}
		}
	})
}

func TestLastCaseLocation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		made := []struct {
			device, camera, source string
			lat, lon               float64
		}{
			{"box-a", "cam1", "camera", 39.1, 116.1},
			{"box-a", "cam2", "camera", 39.2, 116.2},
			{"box-a", "cam1", "camera", 0, 0}, // no location: skipped
			{"box-a", "cam1", "watchdog", 39.9, 116.9},
		}
		err := s.Update(ctx, func(tx *store.Tx) error {
			for _, m := range made {
				c := coverCase("k", "closed")
				c.Device, c.Camera, c.Source, c.Lat, c.Lon = m.device, m.camera, m.source, m.lat, m.lon
				if err := tx.CreateCase(ctx, &c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			device, camera string
			lat, lon       float64
			ok             bool
		}{
			{"box-a", "cam1", 39.1, 116.1, true},
			{"box-a", "", 39.2, 116.2, true}, // the newest of any camera
			{"box-a", "cam3", 0, 0, false},
			{"box-z", "", 0, 0, false},
		}
		for _, tt := range tests {
			lat, lon, ok, err := s.LastCaseLocation(ctx, tt.device, tt.camera, "camera")
			if err != nil || ok != tt.ok || lat != tt.lat || lon != tt.lon {
				t.Errorf("LastCaseLocation(%s, %q) = %v, %v, %v, %v; want %v, %v, %v", tt.device, tt.camera, lat, lon, ok, err, tt.lat, tt.lon, tt.ok)
			}
		}
	})
}

func TestEventsByActorBetween(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		made := []struct {
			actor string
			at    time.Duration // after t0
		}{
			{"supervisor:wang", 0},
			{"supervisor:wang", time.Hour},
			{"supervisor:li", 2 * time.Hour},
			{"verifier:li", time.Hour},
			{"supervisor:wang", 3 * time.Hour}, // at the end of the period: outside
		}
		err := s.Update(ctx, func(tx *store.Tx) error {
			c := coverCase("k", "dispatched")
			if err := tx.CreateCase(ctx, &c); err != nil {
				return err
			}
			for _, m := range made {
				if err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: t0.Add(m.at), Actor: m.actor, Action: "reported"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.EventsByActorBetween(ctx, "supervisor:", t0, t0.Add(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var actors []string
		for _, e := range got {
			actors = append(actors, e.Actor+"@"+e.At.Sub(t0).String())
		}
		if want := []string{"supervisor:wang@0s", "supervisor:wang@1h0m0s", "supervisor:li@2h0m0s"}; !slices.Equal(actors, want) {
			t.Errorf("events %v, want %v", actors, want)
		}
	})
}
