package ingest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/uplink"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// TestLostMessagesAreReplayed: a broker that acknowledges and then drops
// messages (as both brokers do under a burst with default limits) must not
// lose reports: the cloud sees the hole in the sequence and the box replays.
func TestLostMessagesAreReplayed(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := broker.Start("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := &Ingest{BrokerURL: b.URL(), ClientID: "cloud", Applier: &cases.Engine{Store: db, Registry: registry.Demo(), Log: quiet},
		Sink: db, Log: quiet, ReplayRetry: 500 * time.Millisecond, ConfirmEvery: 200 * time.Millisecond}
	go in.Run(ctx)

	// The box: a real outbox and uplink; its publisher "loses" 4-6 once.
	ob, err := outbox.Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	mq, err := uplink.Dial(uplink.MQTTOptions{BrokerURL: b.URL(), ClientID: "edge-box-1", Device: "box-chaoyang-0001",
		OnCommand: func(c wire.Command) {
			switch c.Cmd {
			case wire.CmdReplay:
				ob.Replay(c.FromSeq)
			case wire.CmdConfirm:
				ob.Confirm(c.UpTo)
			}
		}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	var mu sync.Mutex
	lost := map[uint64]bool{4: true, 5: true, 6: true}
	go ob.Run(ctx, func(ctx context.Context, m outbox.Message) error {
		mu.Lock()
		drop := lost[m.Seq]
		delete(lost, m.Seq)
		mu.Unlock()
		if drop {
			return nil // acknowledged, never delivered
		}
		return mq.Publish(ctx, m)
	})

	golden, err := os.ReadFile("../../edge/wire/testdata/report-cover-new.json")
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := 0; i < n; i++ {
		_, err := ob.Append(wire.Topic("box-chaoyang-0001", wire.KindReport), func(seq uint64) ([]byte, error) {
			var r wire.Report
			json.Unmarshal(golden, &r)
			r.Seq = seq
			if seq > 1 {
				r.Phase = wire.PhaseUpdate
			}
			return json.Marshal(r)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := db.ReportCount(ctx)
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reports stored; stats %+v", got, n, in.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cs, _ := db.Cases(ctx, 10)
	if len(cs) != 1 {
		t.Fatalf("%d cases, want 1", len(cs))
	}
	if st := in.Stats(); st.ReplayRequests == 0 {
		t.Fatalf("no replay was requested: %+v", st)
	}
	// The high-water mark is stored just after the batch that moved it.
	for hw, _ := db.SeqHW(ctx, "box-chaoyang-0001"); hw != n; hw, _ = db.SeqHW(ctx, "box-chaoyang-0001") {
		if time.Now().After(deadline) {
			t.Fatalf("stored high-water mark %d, want %d", hw, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The cloud confirms what it stored, and the box forgets its copies (but the newest, which
	// holds the sequence number).
	for ob.Confirmed() != n || ob.Kept() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("box: confirmed up to %d, keeps %d copies; want %d and 1 (stats %+v)", ob.Confirmed(), ob.Kept(), n, in.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := in.Stats(); st.Confirmations == 0 {
		t.Fatalf("no confirmation counted: %+v", st)
	}
}
