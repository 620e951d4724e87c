package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Messages are decoded on paho's goroutine and queued to one of a few
// workers: reports by the cover they are about (so one cover's reports stay
// in order, and two workers never wait for each other's locks), everything
// else by device. Each worker applies its queue in arrival order; reports
// that arrive together (a burst, or whatever came in while its previous
// batch committed) are applied in one transaction when the Applier is a
// BatchApplier, and each is acknowledged only after that commit. At low
// load a batch is one report. Several workers overlap one batch's round
// trips to the database with another's work.
//
// Across workers a device's messages may complete out of order, so a
// sequence hole must stay open for a moment (reorderGrace) before it counts
// as a loss.

// BatchApplier applies many reports in one transaction (cases.Engine).
type BatchApplier interface {
	ApplyBatch(ctx context.Context, items []cases.Item) ([]cases.Result, error)
}

// SeqHWsSink stores many high-water marks at once (store.Store).
type SeqHWsSink interface {
	SetSeqHWs(ctx context.Context, hw map[string]uint64) error
}

// ReportSeqsSink lists which of a device's sequence numbers are stored
// (store.Store); with a shared subscription, the other processes' share.
type ReportSeqsSink interface {
	ReportSeqs(ctx context.Context, device string, from, to uint64) ([]uint64, error)
}

// DefaultMaxBatch bounds the reports applied in one transaction.
const DefaultMaxBatch = 500

// DefaultWorkers is how many batches are applied at once.
const DefaultWorkers = 2

// reorderGrace is how long a sequence hole may stay open, with several
// workers, before a replay is asked for.
const reorderGrace = 500 * time.Millisecond

// sharedGrace is how long a sequence hole may stay open, with a shared
// subscription, before the store is asked whether another process has it.
const sharedGrace = 2 * time.Second

// queued is a message waiting for the worker.
type queued struct {
	m      mqtt.Message
	device string
	kind   string
	report wire.Report // kind report
	bad    string      // why the message is refused; "" if it is not
}

// enqueue runs on paho's goroutine: it parses and validates, then waits for
// room in the queue (which stops reading from the broker when ingest is
// behind, instead of buffering without bound).
func (in *Ingest) enqueue(ctx context.Context, m mqtt.Message) {
	q := queued{m: m}
	device, kind, err := wire.ParseTopic(m.Topic())
	switch {
	case err != nil:
		q.bad = err.Error()
	case kind == wire.KindReport:
		q.device, q.kind = device, kind
		r, err := wire.DecodeReport(m.Payload())
		switch {
		case err != nil:
			q.bad = err.Error()
		case r.Device != device:
			// A box may only publish as itself.
			q.bad = fmt.Sprintf("report claims device %q but was published on %q's topic", r.Device, device)
		}
		q.report = r
	default:
		q.device, q.kind = device, kind
	}
	key := q.device
	if q.report.FacilityID != "" && q.bad == "" {
		key = "cover:" + q.report.FacilityID
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	select {
	case in.queues[h.Sum32()%uint32(len(in.queues))] <- q:
	case <-ctx.Done(): // not acknowledged: the broker sends it again
	}
}

func (in *Ingest) setupWorkers() {
	if in.MaxBatch <= 0 {
		in.MaxBatch = DefaultMaxBatch
	}
	if in.Workers <= 0 {
		in.Workers = DefaultWorkers
	}
	switch {
	case in.Shared != "":
		in.gaps.grace = sharedGrace
	case in.Workers > 1:
		in.gaps.grace = reorderGrace
	}
	in.queues = make([]chan queued, in.Workers)
	for i := range in.queues {
		in.queues[i] = make(chan queued, 2*in.MaxBatch)
	}
	in.hwMoved = map[string]uint64{}
}

func (in *Ingest) startWorkers(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, q := range in.queues {
		wg.Go(func() { in.work(ctx, q, i == 0) })
	}
	return &wg
}

// work is a worker: it takes what is queued, up to MaxBatch messages at a
// time, until ctx is done. The first worker also looks at old sequence holes
// now and then.
func (in *Ingest) work(ctx context.Context, queue chan queued, first bool) {
	var chunk []queued
	var holes <-chan time.Time
	if first && in.gaps.grace > 0 {
		t := time.NewTicker(in.gaps.grace / 2)
		defer t.Stop()
		holes = t.C
	}
	defer func() { // what the last chunks moved
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		in.persistHW(sctx)
	}()
	for {
		chunk = chunk[:0]
		select {
		case <-ctx.Done():
			return
		case now := <-holes:
			for _, device := range in.gaps.due(now) {
				from, _, _ := in.gaps.hole(device)
				if in.Shared != "" {
					from = in.storedElsewhere(ctx, device)
				}
				if from != 0 {
					in.askReplay(device, from, 0)
				}
			}
			in.persistHW(ctx)
			continue
		case q := <-queue:
			chunk = append(chunk, q)
		}
	more:
		for len(chunk) < in.MaxBatch {
			select {
			case q := <-queue:
				chunk = append(chunk, q)
			default:
				break more
			}
		}
		in.process(ctx, chunk)
		// The marks only spare a restarted cloud needless replay requests:
		// under load, store them once a second rather than after every chunk.
		if len(queue) == 0 || in.hwAge() >= time.Second {
			in.persistHW(ctx)
		}
	}
}

// process handles a chunk in order: each run of valid reports as one batch,
// everything else one by one.
func (in *Ingest) process(ctx context.Context, chunk []queued) {
	var run []queued
	for _, q := range chunk {
		if q.kind == wire.KindReport && q.bad == "" {
			run = append(run, q)
			continue
		}
		in.applyReports(ctx, run)
		run = run[:0]
		if q.bad != "" {
			in.deadLetter(ctx, q.m, q.bad)
			q.m.Ack()
			continue
		}
		in.handle(ctx, q.m) // status and telemetry
	}
	in.applyReports(ctx, run)
}

func (in *Ingest) applyReports(ctx context.Context, run []queued) {
	if len(run) == 0 {
		return
	}
	if ba, ok := in.Applier.(BatchApplier); ok && len(run) > 1 {
		items := make([]cases.Item, len(run))
		for i, q := range run {
			items[i] = cases.Item{Report: q.report, Raw: q.m.Payload()}
		}
		res, err := ba.ApplyBatch(ctx, items)
		if err == nil {
			for i, q := range run {
				in.applied(ctx, q, res[i].Outcome, res[i].Err)
			}
			return
		}
		if ctx.Err() != nil {
			return // not acknowledged: the broker sends them again
		}
		in.Log.Warn("batch apply failed, applying one by one", "reports", len(run), "err", err)
	}
	for _, q := range run {
		in.applyOne(ctx, q)
	}
}

// applyOne applies one report, retrying what may be passing (a lock, a
// lost connection).
func (in *Ingest) applyOne(ctx context.Context, q queued) {
	var out cases.Outcome
	var err error
	for attempt := 0; ; attempt++ {
		out, err = in.Applier.Apply(ctx, q.report, q.m.Payload())
		if err == nil || errors.Is(err, cases.ErrUnknownFacility) || errors.Is(err, cases.ErrNotInFleet) || attempt == 4 || ctx.Err() != nil {
			break
		}
		in.Log.Warn("apply report failed, retrying", "device", q.device, "seq", q.report.Seq, "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
	if ctx.Err() != nil {
		return // shutting down: not acknowledged, so not lost
	}
	in.applied(ctx, q, out, err)
}

// applied counts and acknowledges a report whose effect is committed (or
// dead-letters it when it could not be applied).
func (in *Ingest) applied(ctx context.Context, q queued, out cases.Outcome, err error) {
	defer q.m.Ack()
	if err != nil {
		// A report refused for good (a facility or camera the registries do not know) is kept in
		// the dead letters and counts as received: otherwise its sequence number would stay a hole
		// that asks the box for a replay every ReplayRetry and holds back its confirmations. One
		// that failed for any other reason is not: a replay may yet apply it.
		stored := in.deadLetter(ctx, q.m, "apply: "+err.Error())
		if stored && (errors.Is(err, cases.ErrUnknownFacility) || errors.Is(err, cases.ErrNotInFleet)) {
			in.track(ctx, q.device, q.report.Seq)
		}
		return
	}
	in.track(ctx, q.device, q.report.Seq)
	switch {
	case out.Duplicate:
		in.duplicates.Add(1)
		in.Log.Debug("duplicate report ignored", "device", q.device, "seq", q.report.Seq)
	default:
		in.accepted.Add(1)
		if r := q.report; in.OnDetection != nil && r.Phase == wire.PhaseNew && r.Kind != wire.ReportSnapshot { // a snapshot is no detection
			in.OnDetection(q.device, r.Camera, r.Kind, r.State, r.ObservedAt)
		}
		if out.Created {
			in.cases.Add(1)
			in.Log.Info("case opened", "case", out.CaseID, "device", q.device, "facility", q.report.FacilityID, "state", q.report.State)
		}
	}
}

// moved notes a device's new high-water mark, for persistHW.
func (in *Ingest) moved(device string, hw uint64) {
	in.hwMu.Lock()
	defer in.hwMu.Unlock()
	in.hwMoved[device] = max(in.hwMoved[device], hw)
}

func (in *Ingest) hwAge() time.Duration {
	in.hwMu.Lock()
	defer in.hwMu.Unlock()
	return time.Since(in.hwStored)
}

// persistHW stores the high-water marks that moved.
func (in *Ingest) persistHW(ctx context.Context) {
	in.hwMu.Lock()
	moved := in.hwMoved
	in.hwMoved, in.hwStored = map[string]uint64{}, time.Now()
	in.hwMu.Unlock()
	if len(moved) == 0 {
		in.confirm(nil) // marks held back by the interval
		return
	}
	var err error
	if s, ok := in.Sink.(SeqHWsSink); ok {
		err = s.SetSeqHWs(ctx, moved)
	} else {
		for d, hw := range moved {
			if err = in.Sink.SetSeqHW(ctx, d, hw); err != nil {
				break
			}
		}
	}
	if err != nil {
		in.Log.Error("store sequence high-water marks", "devices", len(moved), "err", err)
	}
	in.confirm(moved)
}

// storedElsewhere, with a shared subscription, marks as seen what the store
// holds of a device's open hole, and returns where the hole now starts (0:
// closed).
func (in *Ingest) storedElsewhere(ctx context.Context, device string) uint64 {
	from, upTo, ok := in.gaps.hole(device)
	if !ok {
		return 0
	}
	rs, isRS := in.Sink.(ReportSeqsSink)
	if !isRS {
		return from
	}
	seqs, err := rs.ReportSeqs(ctx, device, from, upTo)
	if err != nil {
		in.Log.Error("look up stored sequence numbers", "device", device, "err", err)
		return from
	}
	now := time.Now()
	for _, s := range seqs {
		if hw, moved, _ := in.gaps.see(device, s, now); moved {
			in.moved(device, hw)
		}
	}
	if from, _, ok = in.gaps.hole(device); !ok {
		return 0
	}
	return from
}
