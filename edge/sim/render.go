package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// ffmpegArgs is the encoder command line: constant keyframe interval and
// no B-frames, like the cameras the edge box reads, so that the decoder
// sees the same GOP structure in tests as in the street.
// The scene's CRF (Conditions.CRF) sets the compression: higher is coarser.
func (s Scene) ffmpegArgs(path, format string) []string {
	size := strconv.Itoa(s.Width) + "x" + strconv.Itoa(s.Height)
	gop := strconv.Itoa(s.GOP)
	args := []string{
		"-hide_banner", "-loglevel", "error",
		"-f", "rawvideo", "-pix_fmt", "bgr24", "-s", size, "-r", strconv.Itoa(s.FPS), "-i", "-",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
		"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0",
	}
	if s.Conditions.CRF > 0 {
		args = append(args, "-crf", strconv.Itoa(s.Conditions.CRF))
	}
	return append(args, "-pix_fmt", "yuv420p", "-f", format, "-y", path)
}

// Render encodes the scene to tsPath as H.264 in MPEG-TS by piping raw
// frames into ffmpeg, and returns the truth for what it rendered. progress,
// if not nil, is called after each frame is handed to the encoder.
func (s Scene) Render(ctx context.Context, tsPath string, progress func(done, total int)) (Truth, error) {
	return s.render(ctx, tsPath, "mpegts", progress)
}

// RenderH264 is Render to a raw H.264 Annex-B elementary stream (what an
// RTSP camera's packets carry once depacketised), for evaluations that feed
// the decoder access units directly.
func (s Scene) RenderH264(ctx context.Context, path string, progress func(done, total int)) (Truth, error) {
	return s.render(ctx, path, "h264", progress)
}

func (s Scene) render(ctx context.Context, tsPath, format string, progress func(done, total int)) (Truth, error) {
	if err := s.Validate(); err != nil {
		return Truth{}, fmt.Errorf("render %s: %w", tsPath, err)
	}
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return Truth{}, fmt.Errorf("render %s: ffmpeg (with libx264) is required and was not found: %w", tsPath, err)
	}
	start := time.Now()
	truth := s.Truth()
	s.loadAssets() // build once here, not inside the first frame's timing

	cmd := exec.CommandContext(ctx, bin, s.ffmpegArgs(tsPath, format)...)
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Truth{}, fmt.Errorf("render %s: ffmpeg stdin: %w", tsPath, err)
	}
	if err := cmd.Start(); err != nil {
		return Truth{}, fmt.Errorf("render %s: start ffmpeg: %w", tsPath, err)
	}

	// Render the next frame while the previous one is being written, so
	// the Go side and the encoder overlap.
	total := s.Frames()
	frameLen := s.Width * s.Height * 3
	free := make(chan []byte, 3)
	for range cap(free) {
		free <- make([]byte, frameLen)
	}
	ready := make(chan []byte, cap(free))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ready)
		for i := range total {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			s.Frame(i, buf)
			ready <- buf
		}
	}()

	var writeErr error
	done := 0
	for buf := range ready {
		if writeErr == nil {
			if _, err := stdin.Write(buf); err != nil {
				writeErr = err
				close(stop)
			} else {
				done++
				if progress != nil {
					progress(done, total)
				}
			}
		}
		free <- buf
	}
	wg.Wait()
	closeErr := stdin.Close()
	waitErr := cmd.Wait()

	switch {
	case ctx.Err() != nil:
		return Truth{}, fmt.Errorf("render %s: %w", tsPath, ctx.Err())
	case waitErr != nil:
		return Truth{}, fmt.Errorf("render %s: ffmpeg failed after %d of %d frames: %w: %s",
			tsPath, done, total, waitErr, bytes.TrimSpace(stderr.Bytes()))
	case writeErr != nil:
		return Truth{}, fmt.Errorf("render %s: write frame %d to ffmpeg: %w: %s", tsPath, done, writeErr, bytes.TrimSpace(stderr.Bytes()))
	case closeErr != nil && !errors.Is(closeErr, io.ErrClosedPipe):
		return Truth{}, fmt.Errorf("render %s: close ffmpeg stdin: %w", tsPath, closeErr)
	}
	el := time.Since(start)
	slog.Debug("scene rendered", "path", tsPath, "seed", s.Seed, "frames", total,
		"elapsed", el, "ms_per_frame", float64(el.Microseconds())/1000/float64(total))
	return truth, nil
}

// tailBuffer keeps the last max bytes written to it: ffmpeg's complaint is
// at the end of its stderr, and a runaway encoder must not grow memory.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
