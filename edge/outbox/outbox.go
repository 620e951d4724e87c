// Package outbox is the box's durable, ordered store-and-forward queue. Every
// message is written to disk (fsynced) with its per-device sequence number
// before anyone tries to send it, and removed only after the broker
// acknowledged it, so neither a broker outage nor kill -9 loses a report.
//
// fsync policy: the message file and its directory are synced before Append
// returns; the sequence high-water mark is synced before the last pending
// message is removed, so a restart never reuses a sequence number.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Message is one queued message.
type Message struct {
	Seq     uint64
	Topic   string
	Payload []byte
}

// Outbox is a directory of pending messages.
type Outbox struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	seq     uint64   // last sequence number handed out
	pending []uint64 // sequence numbers on disk, ascending
	wake    chan struct{}
	sent    uint64
}

const (
	msgSuffix = ".msg"
	seqFile   = "seq"
)

// Open loads the outbox in dir, creating it if needed.
func Open(dir string, log *slog.Logger) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	o := &Outbox{dir: dir, log: log, wake: make(chan struct{}, 1)}
	if b, err := os.ReadFile(filepath.Join(dir, seqFile)); err == nil {
		o.seq, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("open outbox: %s is corrupt: %w", seqFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(dir, name)) // a write that never finished was never acknowledged to the caller
			continue
		}
		if !strings.HasSuffix(name, msgSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, msgSuffix), 10, 64)
		if err != nil {
			log.Warn("outbox: ignoring stray file", "file", name)
			continue
		}
		o.pending = append(o.pending, n)
		o.seq = max(o.seq, n)
	}
	sort.Slice(o.pending, func(i, j int) bool { return o.pending[i] < o.pending[j] })
	return o, nil
}

// Append assigns the next sequence number, lets build make the payload with
// it, and stores the message durably before returning.
func (o *Outbox) Append(topic string, build func(seq uint64) ([]byte, error)) (uint64, error) {
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
	if err := writeFileSync(o.dir, o.name(seq), data); err != nil {
		return 0, fmt.Errorf("outbox append: %w", err)
	}
	o.seq = seq
	o.pending = append(o.pending, seq)
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

func (o *Outbox) name(seq uint64) string { return fmt.Sprintf("%020d%s", seq, msgSuffix) }

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
	o.mu.Lock()
	if len(o.pending) == 0 {
		o.mu.Unlock()
		return Message{}, false, nil
	}
	seq := o.pending[0]
	o.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(o.dir, o.name(seq)))
	if err != nil {
		return Message{}, false, fmt.Errorf("outbox read %d: %w", seq, err)
	}
	topic, payload, ok := strings.Cut(string(b), "\n")
	if !ok {
		return Message{}, false, fmt.Errorf("outbox: message %d is corrupt (no topic line)", seq)
	}
	return Message{Seq: seq, Topic: topic, Payload: []byte(payload)}, true, nil
}

func (o *Outbox) remove(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.pending) == 1 {
		// Keep the high-water mark before the last file goes.
		if err := writeFileSync(o.dir, seqFile, []byte(strconv.FormatUint(o.seq, 10)+"\n")); err != nil {
			return fmt.Errorf("outbox: save sequence: %w", err)
		}
	}
	if err := os.Remove(filepath.Join(o.dir, o.name(seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: remove %d: %w", seq, err)
	}
	o.pending = o.pending[1:]
	o.sent++
	return nil
}

// writeFileSync writes name in dir atomically: temp file, fsync, rename, fsync dir.
func writeFileSync(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(f.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
