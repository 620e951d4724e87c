// Package outbox is the box's durable, ordered store-and-forward queue. Every
// message is written to disk (fsynced) with its per-device sequence number
// before anyone tries to send it, and removed only after the broker
// acknowledged it, so neither a broker outage nor kill -9 loses a report.
//
// fsync policy: the message file and its directory are synced before Append
// returns. An acknowledged message is renamed into sent/ (the newest always
// stays there), so the highest sequence number survives any restart and is
// never reused.
//
// Size policy: when the pending messages exceed Limits.MaxBytes, the oldest
// telemetry goes first, then the oldest reports; every drop is counted.
// Acknowledged messages move to sent/ and stay there until the cloud
// confirms it has stored them (Confirm: a broker's PUBACK only says the
// broker has a message, and a default-config broker may still drop it), so
// the cloud can ask for a replay from a sequence number. At most
// Limits.KeepSent unconfirmed copies stay; giving one up beyond that is
// counted (Evicted) and logged. When the disk is full, the kept copies yield
// first, oldest first (counted as trimmed); only when none are left does
// Append fail, and the caller sees the error and keeps its message.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"github.com/gridwatch/gridwatch/edge/atomicfile"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Message is one queued message.
type Message struct {
	Seq     uint64
	Topic   string
	Payload []byte
}

// Class says which messages go first when the outbox is full.
type Class string

const (
	Report    Class = "r" // detections, status changes: kept longest
	Telemetry Class = "t" // health figures: dropped first
)

// Limits bound the outbox.
type Limits struct {
	MaxBytes int64 // pending bytes before the oldest are dropped (default 256 MiB)
	KeepSent int   // acknowledged, unconfirmed messages kept for replay (default 100,000; given up first when the disk is full)
}

// Outbox is a directory of pending messages.
type Outbox struct {
	dir    string
	log    *slog.Logger
	limits Limits

	mu      sync.Mutex
	seq     uint64  // last sequence number handed out
	pending []entry // on disk, ascending by seq
	bytes   int64   // size of pending
	sentLog []entry // acknowledged and kept for replay, ascending
	wake    chan struct{}
	sent    uint64
	dropped map[Class]uint64
	trimmed uint64 // kept copies deleted to make room on a full disk
	// confirmed: the cloud has stored every message up to here (Confirm).
	confirmed uint64
	evicted   uint64 // unconfirmed copies given up beyond KeepSent
}

type entry struct {
	seq   uint64
	class Class
	size  int64
}

func (e entry) name() string { return fmt.Sprintf("%020d.%s%s", e.seq, e.class, msgSuffix) }

const (
	msgSuffix = ".msg"
	sentDir   = "sent"
)

// Open loads the outbox in dir, creating it if needed.
func Open(dir string, log *slog.Logger) (*Outbox, error) {
	return OpenLimits(dir, Limits{}, log)
}

// OpenLimits is Open with explicit limits.
func OpenLimits(dir string, lim Limits, log *slog.Logger) (*Outbox, error) {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 256 << 20
	}
	if lim.KeepSent <= 0 {
		lim.KeepSent = 100000
	}
	if err := os.MkdirAll(filepath.Join(dir, sentDir), 0o755); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	o := &Outbox{dir: dir, log: log, limits: lim, wake: make(chan struct{}, 1), dropped: map[Class]uint64{}}
	var err error
	if o.pending, err = scan(dir, log); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if o.sentLog, err = scan(filepath.Join(dir, sentDir), log); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	for _, e := range o.pending {
		o.bytes += e.size
		o.seq = max(o.seq, e.seq)
	}
	for _, e := range o.sentLog {
		o.seq = max(o.seq, e.seq)
	}
	return o, nil
}

// scan lists the messages in dir, ascending, removing unfinished writes.
func scan(dir string, log *slog.Logger) ([]entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(dir, name)) // a write that never finished was never acknowledged to the caller
			continue
		}
		if !strings.HasSuffix(name, msgSuffix) {
			continue
		}
		num, class, _ := strings.Cut(strings.TrimSuffix(name, msgSuffix), ".")
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || (Class(class) != Report && Class(class) != Telemetry) {
			log.Warn("outbox: ignoring stray file", "file", name)
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, entry{seq: n, class: Class(class), size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, nil
}

// Append assigns the next sequence number, lets build make the payload with
// it, and stores the message durably before returning.
func (o *Outbox) Append(topic string, build func(seq uint64) ([]byte, error)) (uint64, error) {
	return o.AppendClass(Report, topic, build)
}

// AppendClass is Append for a given class of message.
func (o *Outbox) AppendClass(class Class, topic string, build func(seq uint64) ([]byte, error)) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq := o.seq + 1
	payload, err := build(seq)
	if err != nil {
		return 0, err
	}
	if strings.ContainsRune(topic, '\n') {
		return 0, fmt.Errorf("outbox: topic %q contains a newline", topic)
	}
	data := append([]byte(topic+"\n"), payload...)
	e := entry{seq: seq, class: class, size: int64(len(data))}
	o.makeRoom(e.size)
	err = writeFile(o.dir, e.name(), data)
	for err != nil && diskFull(err) && o.trimmable() > 0 {
		o.trimSent(min(o.trimmable(), trimBatch))
		err = writeFile(o.dir, e.name(), data)
	}
	if err != nil {
		// The caller is told it failed, so nothing of it may be sent later
		// (a failure after the rename would otherwise leave it behind).
		os.Remove(filepath.Join(o.dir, e.name()))
		return 0, fmt.Errorf("outbox append: %w", err)
	}
	o.seq = seq
	o.pending = append(o.pending, e)
	o.bytes += e.size
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

// makeRoom drops pending messages, oldest telemetry first, until size more
// bytes fit. The head is never dropped: it may be in flight. Called locked.
func (o *Outbox) makeRoom(size int64) {
	for o.bytes+size > o.limits.MaxBytes && len(o.pending) > 1 {
		victim := -1
		for i := 1; i < len(o.pending); i++ {
			if o.pending[i].class == Telemetry {
				victim = i
				break
			}
		}
		if victim < 0 {
			victim = 1
		}
		e := o.pending[victim]
		if err := os.Remove(filepath.Join(o.dir, e.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.log.Error("outbox: drop failed", "seq", e.seq, "err", err)
			return
		}
		o.pending = append(o.pending[:victim], o.pending[victim+1:]...)
		o.bytes -= e.size
		o.dropped[e.class]++
		o.log.Warn("outbox full: dropped a message", "seq", e.seq, "class", e.class, "limit_bytes", o.limits.MaxBytes)
	}
}

// trimBatch is how many kept copies go at a time when the disk is full.
const trimBatch = 64

func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// trimmable is how many kept copies may go for space: all but the one
// holding the highest sequence number handed out, which must stay on disk so
// that a restart never reuses it. Called locked.
func (o *Outbox) trimmable() int {
	n := len(o.sentLog)
	if n > 0 && o.sentLog[n-1].seq == o.seq {
		n--
	}
	return n
}

// trimSent deletes the n oldest copies kept for replay. Called locked.
func (o *Outbox) trimSent(n int) {
	for _, e := range o.sentLog[:n] {
		if err := os.Remove(filepath.Join(o.dir, sentDir, e.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.log.Error("outbox: trim failed", "seq", e.seq, "err", err)
		}
	}
	o.log.Warn("disk full: deleted copies kept for replay", "copies", n,
		"from_seq", o.sentLog[0].seq, "to_seq", o.sentLog[n-1].seq)
	o.sentLog = o.sentLog[n:]
	o.trimmed += uint64(n)
}

// Trimmed counts kept copies deleted to make room on a full disk.
func (o *Outbox) Trimmed() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trimmed
}

// Dropped counts messages dropped for space, by class.
func (o *Outbox) Dropped() map[Class]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[Class]uint64, len(o.dropped))
	for k, v := range o.dropped {
		out[k] = v
	}
	return out
}

// Confirm records that the cloud has stored every message up to seq upTo:
// their kept copies are deleted, but for the one holding the highest
// sequence number handed out, which must stay so that a restart never
// reuses it. Confirmations never move back. It returns how many copies went.
func (o *Outbox) Confirm(upTo uint64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if upTo <= o.confirmed {
		return 0, nil
	}
	o.confirmed = upTo
	n := 0
	for n < o.trimmable() && o.sentLog[n].seq <= upTo {
		n++
	}
	for i, e := range o.sentLog[:n] {
		if err := os.Remove(filepath.Join(o.dir, sentDir, e.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.sentLog = o.sentLog[i:]
			return i, fmt.Errorf("outbox: forget confirmed %d: %w", e.seq, err)
		}
	}
	o.sentLog = o.sentLog[n:]
	return n, nil
}

// Confirmed is the sequence number up to which the cloud has confirmed
// everything (0: nothing confirmed since Open).
func (o *Outbox) Confirmed() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.confirmed
}

// Kept is the number of acknowledged copies kept for replay.
func (o *Outbox) Kept() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.sentLog)
}

// Evicted counts acknowledged copies the cloud had not confirmed, given up
// because more than Limits.KeepSent were waiting: if the broker dropped one
// of them, a replay can no longer bring it back.
func (o *Outbox) Evicted() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.evicted
}

// Replay queues again every kept acknowledged message from seq `from` on, in
// order, ahead of anything newer. It returns how many were queued and the
// lowest sequence number still available (a caller asking for less has lost
// the difference, and says so).
func (o *Outbox) Replay(from uint64) (n int, oldest uint64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sentLog) > 0 {
		oldest = o.sentLog[0].seq
	}
	keep := o.sentLog[:0]
	var back []entry
	for _, e := range o.sentLog {
		if e.seq < from {
			keep = append(keep, e)
			continue
		}
		if err := os.Rename(filepath.Join(o.dir, sentDir, e.name()), filepath.Join(o.dir, e.name())); err != nil {
			return n, oldest, fmt.Errorf("outbox replay %d: %w", e.seq, err)
		}
		back = append(back, e)
		n++
	}
	o.sentLog = keep
	o.pending = append(back, o.pending...)
	sort.Slice(o.pending, func(i, j int) bool { return o.pending[i].seq < o.pending[j].seq })
	for _, e := range back {
		o.bytes += e.size
	}
	if n > 0 {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
	return n, oldest, nil
}

// Len is the number of messages waiting.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending)
}

// Sent is the number of messages acknowledged since Open.
func (o *Outbox) Sent() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent
}

// Publisher sends one message and returns nil only once it is acknowledged.
type Publisher func(ctx context.Context, m Message) error

// Run sends pending messages in order until ctx ends. A failed send is
// retried (same message, so order holds) with backoff.
func (o *Outbox) Run(ctx context.Context, publish Publisher) error {
	backoff := 200 * time.Millisecond
	for {
		m, ok, err := o.head()
		if err != nil {
			return err
		}
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-o.wake:
				continue
			}
		}
		if err := publish(ctx, m); err != nil {
			o.log.Warn("outbox: send failed, will retry", "seq", m.Seq, "topic", m.Topic, "err", err, "pending", o.Len())
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		if err := o.remove(m.Seq); err != nil {
			return err
		}
	}
}

func (o *Outbox) head() (Message, bool, error) {
	for {
		o.mu.Lock()
		if len(o.pending) == 0 {
			o.mu.Unlock()
			return Message{}, false, nil
		}
		e := o.pending[0]
		o.mu.Unlock()
		b, err := os.ReadFile(filepath.Join(o.dir, e.name()))
		if errors.Is(err, os.ErrNotExist) && !o.isPending(e.seq) {
			continue // a replay put older messages ahead and this one was dropped for space meanwhile
		}
		if err != nil {
			return Message{}, false, fmt.Errorf("outbox read %d: %w", e.seq, err)
		}
		topic, payload, ok := strings.Cut(string(b), "\n")
		if !ok {
			return Message{}, false, fmt.Errorf("outbox: message %d is corrupt (no topic line)", e.seq)
		}
		return Message{Seq: e.seq, Topic: topic, Payload: []byte(payload)}, true, nil
	}
}

func (o *Outbox) isPending(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.ContainsFunc(o.pending, func(e entry) bool { return e.seq == seq })
}

// remove retires an acknowledged message. It is usually the head, but a
// replay that arrived while it was in flight may have queued older messages
// ahead of it, and the size policy may even have dropped it meanwhile.
func (o *Outbox) remove(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := slices.IndexFunc(o.pending, func(e entry) bool { return e.seq == seq })
	if i < 0 {
		return nil // dropped for space while in flight; it did arrive
	}
	e := o.pending[i]
	// Keep it for replay rather than deleting it.
	if err := os.Rename(filepath.Join(o.dir, e.name()), filepath.Join(o.dir, sentDir, e.name())); err != nil {
		return fmt.Errorf("outbox: retire %d: %w", seq, err)
	}
	o.pending = slices.Delete(o.pending, i, i+1)
	o.bytes -= e.size
	// sentLog stays ascending: after a replay, older messages are
	// acknowledged after newer ones.
	j := sort.Search(len(o.sentLog), func(k int) bool { return o.sentLog[k].seq > e.seq })
	o.sentLog = slices.Insert(o.sentLog, j, e)
	for len(o.sentLog) > o.limits.KeepSent {
		gone := o.sentLog[0]
		os.Remove(filepath.Join(o.dir, sentDir, gone.name()))
		o.sentLog = o.sentLog[1:]
		if gone.seq > o.confirmed {
			o.evicted++
			if o.evicted == 1 || o.evicted%1000 == 0 {
				o.log.Warn("replay window full: gave up copies the cloud has not confirmed", "seq", gone.seq,
					"confirmed", o.confirmed, "keep_sent", o.limits.KeepSent, "given_up", o.evicted)
			}
		}
	}
	o.sent++
	return nil
}

// writeFile stores a message durably (atomicfile.Write); tests replace it
// to fill the disk.
var writeFile = func(dir, name string, data []byte) error {
	return atomicfile.Write(filepath.Join(dir, name), data)
}
