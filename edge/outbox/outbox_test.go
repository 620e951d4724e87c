package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func appendN(t *testing.T, o *Outbox, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := o.Append("t/x", func(seq uint64) ([]byte, error) { return []byte(fmt.Sprintf(`{"seq":%d}`, seq)), nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// collect runs the outbox with a publisher that fails the first `fail` sends.
func collect(t *testing.T, o *Outbox, want int, fail int) []Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []Message
	done := make(chan struct{})
	stopped := make(chan struct{})
	// The next collect on the same outbox must not race this Run: an Append
	// wakes whichever Run is still alive, so wait for this one to return.
	defer func() { cancel(); <-stopped }()
	go func() {
		defer close(stopped)
		o.Run(ctx, func(_ context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			if fail > 0 {
				fail--
				return errors.New("broker down")
			}
			got = append(got, m)
			if len(got) == want {
				close(done)
			}
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d messages sent", len(got), want)
	}
	for o.Len() > 0 { // the last acknowledgement is being recorded
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	return got
}

func TestOrderedDeliveryAcrossFailuresAndRestart(t *testing.T) {
	dir := t.TempDir()
	o, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 5)
	// "Crash": reopen without sending anything; nothing may be lost.
	o, err = Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if o.Len() != 5 {
		t.Fatalf("after reopen %d pending, want 5", o.Len())
	}
	got := collect(t, o, 5, 3)
	for i, m := range got {
		if m.Seq != uint64(i+1) || string(m.Payload) != fmt.Sprintf(`{"seq":%d}`, i+1) || m.Topic != "t/x" {
			t.Fatalf("message %d = %+v", i, m)
		}
	}
	// Sequence numbers continue after everything was sent and the box restarts.
	o, err = Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if o.Len() != 0 {
		t.Fatalf("%d pending after all were acknowledged", o.Len())
	}
	seq, err := o.Append("t/x", func(seq uint64) ([]byte, error) { return []byte("x"), nil })
	if err != nil || seq != 6 {
		t.Fatalf("next seq = %d, %v; want 6", seq, err)
	}
}

func TestBuildErrorKeepsSequence(t *testing.T) {
	o, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append("t", func(uint64) ([]byte, error) { return nil, errors.New("bad") }); err == nil {
		t.Fatal("want the build error")
	}
	seq, _ := o.Append("t", func(uint64) ([]byte, error) { return []byte("ok"), nil })
	if seq != 1 {
		t.Fatalf("seq = %d after a failed build, want 1 (no gap)", seq)
	}
}

func BenchmarkAppend(b *testing.B) {
	o, err := Open(b.TempDir(), quiet)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 600)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Append("gridwatch/v1/dev/box-1/report", func(uint64) ([]byte, error) { return payload, nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReplayResendsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenLimits(dir, Limits{KeepSent: 3}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 5)
	collect(t, o, 5, 0)
	// Only the last 3 are kept; a replay from 2 gets 3, 4, 5 and says 3 is the oldest.
	n, oldest, err := o.Replay(2)
	if err != nil || n != 3 || oldest != 3 {
		t.Fatalf("Replay(2) = %d, %d, %v; want 3, 3, nil", n, oldest, err)
	}
	// Survives a restart before the replay is sent.
	o, err = OpenLimits(dir, Limits{KeepSent: 3}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, o, 3, 0)
	for i, m := range got {
		if m.Seq != uint64(i+3) {
			t.Fatalf("replayed %d = seq %d, want %d", i, m.Seq, i+3)
		}
	}
	seq, _ := o.Append("t/x", func(uint64) ([]byte, error) { return []byte("x"), nil })
	if seq != 6 {
		t.Fatalf("seq after replay = %d, want 6", seq)
	}
}

func TestFullOutboxDropsTelemetryFirst(t *testing.T) {
	o, err := OpenLimits(t.TempDir(), Limits{MaxBytes: 10 * 20}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	payload := func(uint64) ([]byte, error) { return []byte("0123456789012345"), nil } // 20 bytes with "t/x\n"
	classes := []Class{Report, Telemetry, Report, Telemetry, Report, Telemetry, Report, Telemetry, Report, Telemetry}
	for _, c := range classes {
		if _, err := o.AppendClass(c, "t/x", payload); err != nil {
			t.Fatal(err)
		}
	}
	// Three more reports: three telemetry messages must go, oldest first, no report.
	for i := 0; i < 3; i++ {
		o.AppendClass(Report, "t/x", payload)
	}
	d := o.Dropped()
	if d[Telemetry] != 3 || d[Report] != 0 {
		t.Fatalf("dropped %v, want 3 telemetry and no reports", d)
	}
	if o.Len() != 10 {
		t.Fatalf("%d pending, want 10", o.Len())
	}
	// Only reports left to drop: the oldest report after the head goes, and it is counted.
	for i := 0; i < 3; i++ {
		o.AppendClass(Report, "t/x", payload)
	}
	if d := o.Dropped(); d[Telemetry] != 5 || d[Report] != 1 {
		t.Fatalf("dropped %v, want 5 telemetry and 1 report", d)
	}
}

// onDiskWithRoom makes writes fail with ENOSPC while the outbox in dir
// already holds room messages (pending and kept), like a small full disk.
func onDiskWithRoom(t *testing.T, dir string, room *int) {
	t.Helper()
	orig := writeFile
	t.Cleanup(func() { writeFile = orig })
	writeFile = func(d, name string, data []byte) error {
		n := 0
		for _, sub := range []string{dir, filepath.Join(dir, sentDir)} {
			ents, _ := os.ReadDir(sub)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), msgSuffix) {
					n++
				}
			}
		}
		if n >= *room {
			return &os.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}
		}
		return orig(d, name, data)
	}
}

func TestFullDiskTrimsReplayCopiesThenRefuses(t *testing.T) {
	dir := t.TempDir()
	room := 10
	onDiskWithRoom(t, dir, &room)
	o, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 10)
	collect(t, o, 10, 0)
	// The disk is full of copies kept for replay: they make room, oldest first.
	appendN(t, o, 5)
	if o.Len() != 5 || o.Trimmed() < 5 {
		t.Fatalf("pending %d, trimmed %d; want 5 pending and at least 5 copies trimmed", o.Len(), o.Trimmed())
	}
	if _, oldest, _ := o.Replay(100); oldest != 0 && oldest <= 5 {
		t.Fatalf("oldest kept copy is %d: the oldest should have gone first", oldest)
	}
	appendN(t, o, 5)
	// Full of pending messages: the caller is refused and told why.
	_, err = o.Append("t/x", func(seq uint64) ([]byte, error) { return []byte("x"), nil })
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if o.Len() != 10 {
		t.Fatalf("%d pending after the refusal, want 10", o.Len())
	}
	// Space comes back: the next message takes the next sequence number.
	room = 20
	seq, err := o.Append("t/x", func(seq uint64) ([]byte, error) { return []byte("x"), nil })
	if err != nil || seq != 21 {
		t.Fatalf("append after space freed = %d, %v; want 21", seq, err)
	}
}

func TestFailedAppendLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	orig := writeFile
	t.Cleanup(func() { writeFile = orig })
	// The file lands, then the directory sync fails.
	writeFile = func(d, name string, data []byte) error {
		if err := orig(d, name, data); err != nil {
			return err
		}
		return errors.New("sync dir: input/output error")
	}
	o, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append("t/x", func(uint64) ([]byte, error) { return []byte("refused"), nil }); err == nil {
		t.Fatal("want the error")
	}
	// The caller was told it failed: a restart must not send it.
	if o, err = Open(dir, quiet); err != nil {
		t.Fatal(err)
	}
	if o.Len() != 0 {
		t.Fatalf("%d pending after a failed append and a restart, want 0", o.Len())
	}
}

// The cloud's replay command can arrive while a newer message is in flight:
// the older ones go ahead of it, and the outbox must keep running.
func TestReplayWhileSendingKeepsRunning(t *testing.T) {
	o, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []uint64
	replayed := false
	errc := make(chan error, 1)
	go func() {
		errc <- o.Run(ctx, func(_ context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			if m.Seq == 5 && !replayed {
				replayed = true
				if _, _, err := o.Replay(2); err != nil {
					t.Error(err)
				}
			}
			got = append(got, m.Seq)
			return nil
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for o.Sent() < 11 || o.Len() > 0 {
		select {
		case err := <-errc:
			t.Fatalf("Run stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d, pending %d after 10 s", o.Sent(), o.Len())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 3, 4, 5, 2, 3, 4, 6, 7, 8}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	// Every message is kept for replay again, oldest first.
	if n, oldest, err := o.Replay(1); n != 8 || oldest != 1 || err != nil {
		t.Fatalf("Replay(1) = %d, %d, %v; want 8, 1, nil", n, oldest, err)
	}
}

// On a disk full of something else, the copies make what room they can, but
// the newest stays: it carries the sequence number a restart continues from.
func TestFullDiskKeepsNewestCopy(t *testing.T) {
	dir := t.TempDir()
	room := 100
	onDiskWithRoom(t, dir, &room)
	o, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 5)
	collect(t, o, 5, 0)
	room = 0
	if _, err := o.Append("t/x", func(uint64) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if o.Trimmed() != 4 {
		t.Fatalf("trimmed %d copies, want 4 (all but the newest)", o.Trimmed())
	}
	room = 100
	if o, err = Open(dir, quiet); err != nil {
		t.Fatal(err)
	}
	seq, err := o.Append("t/x", func(uint64) ([]byte, error) { return []byte("x"), nil })
	if err != nil || seq != 6 {
		t.Fatalf("append after a restart = %d, %v; want 6 (no reuse)", seq, err)
	}
}

// The cloud's confirmation frees the copies it has stored (but the newest,
// which keeps the sequence number), and only unconfirmed copies given up for
// the KeepSent bound count as evicted.
func TestConfirmForgetsStoredCopies(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenLimits(dir, Limits{KeepSent: 4}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, 6)
	collect(t, o, 6, 0)
	if o.Kept() != 4 || o.Evicted() != 2 {
		t.Fatalf("before any confirmation: kept %d, evicted %d; want 4 kept, 2 given up unconfirmed", o.Kept(), o.Evicted())
	}
	if n, err := o.Confirm(4); err != nil || n != 2 {
		t.Fatalf("Confirm(4) = %d, %v; want copies 3 and 4 forgotten", n, err)
	}
	if n, oldest, err := o.Replay(1); err != nil || n != 2 || oldest != 5 {
		t.Fatalf("Replay(1) after Confirm(4) = %d, %d, %v; want 5 and 6 resent", n, oldest, err)
	}
	collect(t, o, 2, 0)
	// A stale confirmation changes nothing; confirming everything keeps the newest copy on disk.
	if n, _ := o.Confirm(3); n != 0 || o.Confirmed() != 4 {
		t.Fatalf("Confirm(3) after Confirm(4) forgot %d, confirmed %d", n, o.Confirmed())
	}
	if n, err := o.Confirm(6); err != nil || n != 1 || o.Kept() != 1 {
		t.Fatalf("Confirm(6) = %d, %v, kept %d; want 5 forgotten and 6 kept", n, err, o.Kept())
	}
	ents, _ := os.ReadDir(filepath.Join(dir, sentDir))
	if len(ents) != 1 {
		t.Fatalf("sent/ holds %d files after confirming everything, want the newest only", len(ents))
	}
	o, err = OpenLimits(dir, Limits{KeepSent: 4}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := o.Append("t/x", func(uint64) ([]byte, error) { return []byte("x"), nil }); seq != 7 {
		t.Fatalf("seq after a restart = %d, want 7", seq)
	}
	// Copies confirmed as they go are never evicted, however many pass.
	for i := 0; i < 10; i++ {
		if i > 0 {
			appendN(t, o, 1)
		}
		m := collect(t, o, 1, 0)[0]
		if _, err := o.Confirm(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if o.Evicted() != 0 || o.Kept() != 1 {
		t.Fatalf("after confirmed traffic: evicted %d, kept %d; want none (counted since Open) and 1", o.Evicted(), o.Kept())
	}
}
