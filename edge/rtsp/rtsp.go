// Package rtsp owns camera ingest on the edge box: it keeps one RTSP session
// to a street camera alive (dial, read, detect stalls, reconnect with
// backoff) and turns the H.264 it receives into access units in Annex-B, with
// SPS and PPS in front of every keyframe so that a fresh decoder can decode
// any keyframe alone. It is pure Go, built on github.com/deepch/vdk's
// format/rtspv2 client; decoding lives in edge/decode.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepch/vdk/av"
	"github.com/deepch/vdk/codec/h264parser"
	"github.com/deepch/vdk/format/rtspv2"
)

// AccessUnit is one picture from the camera.
type AccessUnit struct {
	// Keyframe is true for an IDR picture, decided from the NAL unit types
	// (rtspv2's own flag misses IDRs that arrive in STAP-A aggregates).
	Keyframe bool
	// AnnexB holds the picture's NAL units with 00 00 00 01 start codes.
	// Keyframes carry SPS and PPS in front. The handler owns it.
	AnnexB []byte
	// PTS is stream time, 0 at the first packet of the session and at
	// millisecond resolution (what rtspv2 gives).
	PTS time.Duration
	// Received is the wall-clock time the unit's first packet arrived.
	Received time.Time
	// Session numbers the connections that delivered, from 1. When it
	// changes PTS restarts and the stream may have changed (decoders for
	// every frame should start over); the first unit of each session is a
	// keyframe.
	Session uint64
}

// Stats are cumulative counters for one Stream.
type Stats struct {
	Packets    uint64 // rtspv2 packets (one per slice)
	Keyframes  uint64 // keyframes received (delivered or not)
	Bytes      uint64 // H.264 payload bytes received
	Reconnects uint64 // connection attempts after the first, failed or not
	Dropped    uint64 // access units dropped because the handler fell behind
	LastPacket time.Time
	Connected  bool
}

// Options tune a Stream; zero values take the defaults.
type Options struct {
	// DialTimeout bounds the TCP connect and each RTSP request, and is
	// rtspv2's read/write deadline while streaming. Default 5s.
	DialTimeout time.Duration
	// StallTimeout is how long the stream may go without a packet before it
	// is dropped and dialled again. Default 2s.
	StallTimeout time.Duration
	// Reconnect backoff doubles from MinBackoff up to MaxBackoff, with
	// jitter. Defaults 250ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// QueueLen is how many access units may wait for a slow handler before
	// units are dropped. Default 50 (2 s at 25 fps).
	QueueLen int
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 2 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 50
	}
	return o
}

var (
	errStalled    = errors.New("stream stalled")
	errStreamStop = errors.New("stream stopped by rtspv2")
	// ErrRunning is returned by Run when the Stream is already running.
	ErrRunning = errors.New("rtsp: stream already running")
)

// Stream is one camera. Run it once; read Stats from any goroutine.
type Stream struct {
	url string
	log *slog.Logger
	opt Options

	running    atomic.Bool
	packets    atomic.Uint64
	keyframes  atomic.Uint64
	bytes      atomic.Uint64
	reconnects atomic.Uint64
	sessions   atomic.Uint64
	dropped    atomic.Uint64
	lastPacket atomic.Int64 // unix nanoseconds
	connected  atomic.Bool
	dropping   bool // only touched by Run's reading loop
}

// New prepares a Stream for url (rtsp:// or rtsps://, credentials in the
// URL). Nothing is dialled until Run.
func New(rawURL string, log *slog.Logger, opt Options) *Stream {
	if log == nil {
		log = slog.Default()
	}
	return &Stream{
		url: rawURL,
		log: log.With("component", "rtsp", "url", redact(rawURL)),
		opt: opt.withDefaults(),
	}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// Stats returns a snapshot of the counters.
func (s *Stream) Stats() Stats {
	st := Stats{
		Packets:    s.packets.Load(),
		Keyframes:  s.keyframes.Load(),
		Bytes:      s.bytes.Load(),
		Reconnects: s.reconnects.Load(),
		Dropped:    s.dropped.Load(),
		Connected:  s.connected.Load(),
	}
	if ns := s.lastPacket.Load(); ns != 0 {
		st.LastPacket = time.Unix(0, ns)
	}
	return st
}

// Run reads the camera until ctx is done, reconnecting with exponential
// backoff and jitter whenever the session fails, ends or stalls. handle is
// called from a single goroutine, in order; it should be quick (decode a
// keyframe, not more): units it cannot keep up with are dropped, non-keyframes
// first. Run returns ctx.Err() after handle has returned for the last time.
func (s *Stream) Run(ctx context.Context, handle func(AccessUnit)) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	q := newQueue(s.opt.QueueLen)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			au, ok := q.pop(ctx)
			if !ok {
				return
			}
			handle(au)
		}
	})

	backoff := s.opt.MinBackoff
	failures := 0 // in a row, for the log
	for first := true; ; first = false {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !first {
			s.reconnects.Add(1)
		}
		healthy, err := s.session(ctx, q)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if healthy {
			backoff, failures = s.opt.MinBackoff, 0
		}
		failures++
		// Equal jitter: between half and all of the backoff, so that the
		// cameras of a box that lost its uplink don't redial in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		s.log.Warn("camera stream lost, reconnecting", "err", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, s.opt.MaxBackoff)
	}
}

// session runs one connection. healthy reports that it streamed for long
// enough (MaxBackoff) that the next attempt should start from MinBackoff.
//
// What rtspv2 (vdk v0.0.27) hands us, read from its client.go:
//   - OutgoingPacketQueue carries one *av.Packet per VCL NAL unit (types
//     1-5), i.e. per slice, depacketized from single-NAL, STAP-A and FU-A
//     payloads. Data is AVCC: a 4-byte big-endian length, then the NAL.
//   - Time is the RTP timestamp as time.Duration(ts/90)*time.Millisecond,
//     not rebased; all slices of one picture share it. The RTP marker bit is
//     not passed on, so a picture is known complete only when the next starts.
//   - IsKeyFrame is wrong for IDRs inside STAP-A (it tests the STAP-A type).
//   - SPS/PPS (and AUD/SEI) never appear as packets: SPS/PPS in-band update
//     CodecData and send SignalCodecUpdate; AUD/SEI are dropped.
//   - When its reader fails (EOF, deadline, desync) it sends
//     SignalStreamRTPStop; if its queue passes 2000 packets it gives up the
//     same way. A server that just goes quiet is noticed only when its read
//     deadline (ReadWriteTimeout, our DialTimeout) expires; the stall
//     timeout is meant to be shorter.
func (s *Stream) session(ctx context.Context, q *queue) (healthy bool, err error) {
	client, err := s.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer client.Close()

	videoIdx, sps, pps, err := h264Params(client.CodecData)
	if err != nil {
		return false, err
	}
	id := s.sessions.Add(1)
	s.connected.Store(true)
	defer s.connected.Store(false)
	s.log.Info("camera stream connected", "session", id)

	asm := &assembler{}
	asm.setParams(sps, pps)
	started := time.Now()
	var firstPacket time.Time
	seenKey := false
	stall := time.NewTimer(s.opt.StallTimeout)
	defer stall.Stop()
	defer func() {
		healthy = !firstPacket.IsZero() && time.Since(firstPacket) >= s.opt.MaxBackoff
	}()

	// signals handles what rtspv2 reports besides packets. It reports a
	// codec update before it queues the packet that follows the new SPS/PPS,
	// so draining signals before each packet keeps keyframes and their
	// parameter sets in step.
	signals := func(sig int) (stop bool) {
		switch sig {
		case rtspv2.SignalCodecUpdate:
			// rtspv2 writes CodecData before sending the signal, so reading
			// it here is ordered after the write.
			if _, sps, pps, err := h264Params(client.CodecData); err == nil {
				asm.setParams(sps, pps)
			}
			return false
		case rtspv2.SignalStreamRTPStop:
			return true
		}
		return false
	}
	deliver := func(au AccessUnit) {
		if au.Keyframe {
			s.keyframes.Add(1)
			seenKey = true
		}
		if !seenKey {
			return // a P-frame from before the first keyframe: undecodable
		}
		au.Session = id
		s.deliver(q, au)
	}
	packet := func(pkt *av.Packet) {
		now := time.Now()
		s.packets.Add(1)
		s.bytes.Add(uint64(len(pkt.Data)))
		s.lastPacket.Store(now.UnixNano())
		if firstPacket.IsZero() {
			firstPacket = now
		}
		if pkt.Idx != videoIdx {
			return
		}
		nals, err := splitAVCC(pkt.Data)
		if err != nil {
			s.log.Debug("bad packet", "err", err)
			return
		}
		if au, ok := asm.push(pkt.Time, nals, now); ok {
			deliver(au)
		}
	}
	// drainPackets takes what rtspv2 queued before it stopped.
	drainPackets := func() {
		for {
			select {
			case pkt := <-client.OutgoingPacketQueue:
				packet(pkt)
			default:
				return
			}
		}
	}

	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case pkt := <-client.OutgoingPacketQueue:
			stop := false
		pending:
			for {
				select {
				case sig := <-client.Signals:
					stop = stop || signals(sig)
				default:
					break pending
				}
			}
			packet(pkt)
			if stop {
				drainPackets()
				asm.discard() // the last unit may be cut short
				return false, errStreamStop
			}
			stall.Reset(s.opt.StallTimeout) // Go ≥ 1.23: no stale tick after Reset
		case sig := <-client.Signals:
			if signals(sig) {
				drainPackets()
				asm.discard()
				return false, errStreamStop
			}
		case <-stall.C:
			asm.discard()
			if firstPacket.IsZero() {
				return false, fmt.Errorf("%w: no packet in %v after connecting", errStalled, time.Since(started).Round(time.Millisecond))
			}
			return false, fmt.Errorf("%w: no packet for %v", errStalled, s.opt.StallTimeout)
		}
	}
}

func (s *Stream) deliver(q *queue, au AccessUnit) {
	n := q.push(au)
	if n == 0 {
		if s.dropping {
			s.dropping = false
			s.log.Info("handler caught up", "dropped_total", s.dropped.Load())
		}
		return
	}
	s.dropped.Add(uint64(n))
	if !s.dropping {
		s.dropping = true
		s.log.Warn("handler too slow, dropping access units", "queue_len", s.opt.QueueLen)
	}
}

// dial runs rtspv2.Dial, which takes no context, so that ctx can abandon it;
// a client that connects after that is closed.
func (s *Stream) dial(ctx context.Context) (*rtspv2.RTSPClient, error) {
	type result struct {
		c   *rtspv2.RTSPClient
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := rtspv2.Dial(rtspv2.RTSPClientOptions{
			URL:              s.url,
			DialTimeout:      s.opt.DialTimeout,
			ReadWriteTimeout: s.opt.DialTimeout,
			DisableAudio:     true,
		})
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// h264Params finds the H.264 track in rtspv2's codec data and its parameter
// sets (copied; empty if the SDP had none and none came in-band yet).
func h264Params(codecs []av.CodecData) (idx int8, sps, pps []byte, err error) {
	for i, c := range codecs {
		if c == nil || !c.Type().IsVideo() {
			continue
		}
		h, ok := c.(h264parser.CodecData)
		if !ok {
			return 0, nil, nil, fmt.Errorf("video codec %v is not supported, only H.264", c.Type())
		}
		if len(h.RecordInfo.SPS) > 0 {
			sps = append([]byte(nil), h.RecordInfo.SPS[0]...)
		}
		if len(h.RecordInfo.PPS) > 0 {
			pps = append([]byte(nil), h.RecordInfo.PPS[0]...)
		}
		return int8(i), sps, pps, nil
	}
	return 0, nil, nil, errors.New("no H.264 video track in the SDP")
}
