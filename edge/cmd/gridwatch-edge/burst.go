package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gridwatch/gridwatch/edge/agent"
	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/wire"
)

func init() { commands["burst"] = burstCmd }

// burstCmd is a load tool: it appends synthetic cover reports to the box's
// own outbox (the one `run` uses, under data_dir) and sends them through the
// box's own uplink, so a burst exercises exactly the path a real detection
// takes. The facilities cycle new (missing) → update (missing) → end
// (present), so each one makes at most one case however long the burst.
//
//	gridwatch-edge burst --config FILE --n N [--facilities K] [--rate R] [--grace 10s]
func burstCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("burst", flag.ExitOnError)
	path := fs.String("config", "", "device config file (YAML); its data_dir holds the outbox")
	n := fs.Int("n", 1000, "reports to append")
	k := fs.Int("facilities", 0, "how many of the config's covers to report on (0: all)")
	rate := fs.Float64("rate", 0, "reports per second (0: as fast as the outbox stores them)")
	grace := fs.Duration("grace", 10*time.Second, "keep the uplink up this long after the outbox drained, to serve replays")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	fs.Parse(args)
	if *path == "" {
		return errors.New("burst: --config is required")
	}
	if *n < 0 || *rate < 0 || *k < 0 {
		return errors.New("burst: --n, --rate and --facilities must not be negative")
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	type target struct {
		camera, facility string
		lat, lon         float64
	}
	var targets []target
	for _, cam := range cfg.Cameras {
		for _, cv := range cam.Covers {
			lat, lon := cam.Lat, cam.Lon
			if cv.Lat != 0 || cv.Lon != 0 {
				lat, lon = cv.Lat, cv.Lon
			}
			targets = append(targets, target{cam.ID, cv.FacilityID, lat, lon})
		}
	}
	if len(targets) == 0 {
		return errors.New("burst: the config watches no covers")
	}
	if *k > 0 && *k < len(targets) {
		targets = targets[:*k]
	}

	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), log.With("component", "outbox"))
	if err != nil {
		return err
	}
	var replays atomic.Uint64
	mq, err := agent.DialUplink(cfg, ob, func(cmd wire.Command) {
		if cmd.Cmd == wire.CmdReplay {
			replays.Add(1)
			fmt.Printf("burst: replay requested from seq %d\n", cmd.FromSeq)
		}
	}, log)
	if err != nil {
		return err
	}
	defer mq.Close()
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	sendDone := make(chan error, 1)
	go func() { sendDone <- ob.Run(sendCtx, mq.Publish) }()

	// Event ids must differ between runs on the same data dir (a restart
	// after kill -9 continues the cycle but starts new events).
	run := time.Now().UTC().Format("20060102T150405.000")
	var produced, refused, heartbeats, lastSeq uint64
	report := func(i int) (uint64, error) {
		t := targets[i%len(targets)]
		cycle := i / len(targets)
		phase, state := wire.PhaseNew, wire.CoverMissing
		switch cycle % 3 {
		case 1:
			phase = wire.PhaseUpdate
		case 2:
			phase, state = wire.PhaseEnd, wire.CoverPresent
		}
		return ob.Append(wire.Topic(cfg.Device, wire.KindReport), func(seq uint64) ([]byte, error) {
			r := wire.Report{
				V: wire.Version, Device: cfg.Device, Seq: seq, ID: fmt.Sprintf("burst-%s-%s-%d", run, t.facility, cycle/3),
				Phase: phase, Kind: wire.ReportCover, Camera: t.camera, FacilityID: t.facility, State: state,
				Confidence: 0.9, ObservedAt: time.Now().UTC(), Lat: t.lat, Lon: t.lon,
			}
			if err := r.Validate(); err != nil {
				return nil, err
			}
			return json.Marshal(r)
		})
	}
	// The heartbeat is what a real box sends every status_every: it also
	// lets the cloud notice a hole at the tail of a burst.
	start := time.Now()
	heartbeat := func(now time.Time) {
		depth := ob.Len() // not inside build: Append holds the outbox's lock while it runs
		_, err := ob.AppendClass(outbox.Telemetry, wire.Topic(cfg.Device, wire.KindTelemetry), func(seq uint64) ([]byte, error) {
			return json.Marshal(wire.Telemetry{V: wire.Version, Device: cfg.Device, Seq: seq, At: now.UTC(),
				UptimeS: now.Sub(start).Seconds(), OutboxDepth: depth, Cameras: []wire.CameraHealth{}})
		})
		if err != nil {
			fmt.Printf("burst: heartbeat refused: %v\n", err)
			return
		}
		heartbeats++
	}
	progress := func(stage string) {
		fmt.Printf("burst: %s produced %d/%d reports (last seq %d), heartbeats %d, refused %d, sent %d, pending %d, replays %d\n",
			stage, produced, *n, lastSeq, heartbeats, refused, ob.Sent(), ob.Len(), replays.Load())
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	beat := time.NewTicker(cfg.StatusEvery)
	defer beat.Stop()
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) / *rate)
	}
	next := time.Now()
	backoff := 200 * time.Millisecond
	for int(produced) < *n && ctx.Err() == nil {
		select {
		case <-tick.C:
			progress("writing")
		case now := <-beat.C:
			heartbeat(now)
		default:
		}
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					continue
				case <-time.After(d):
				}
			}
			next = next.Add(interval)
		}
		seq, err := report(int(produced))
		if err != nil {
			// A full disk: the report is not stored, so it is not lost
			// yet; a producer keeps it and tries again.
			refused++
			fmt.Printf("burst: append refused (report %d): %v\n", produced+1, err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		produced++
		lastSeq = seq
	}
	progress("written")

	var drained time.Time
	for ctx.Err() == nil {
		if ob.Len() == 0 {
			if drained.IsZero() {
				drained = time.Now()
				progress("drained")
			}
			if time.Since(drained) >= *grace {
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			progress("sending")
		case now := <-beat.C:
			heartbeat(now)
		case err := <-sendDone:
			return fmt.Errorf("burst: outbox stopped: %w", err)
		}
	}
	progress("done")
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}
