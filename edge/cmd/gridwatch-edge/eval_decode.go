package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/gridwatch/gridwatch/edge/h264"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gridwatch/gridwatch/edge/decode"
)

func init() { evals["decode"] = evalDecode }

// evalDecode measures what each decoding mode costs a camera, in CPU time
// (user+system of this process, so the GC and libavcodec count; the
// encoder's does not) per second of 1080p video, all in the same run:
// keyframes only (cover checks), 2 fps downscaled (road occupation), and
// every frame to BGR, against which the others are stated as ratios.
func evalDecode(ctx context.Context, args []string) error {
	return runEvalDecode(ctx, args, os.Stdout, os.Stderr)
}

func runEvalDecode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seconds := fs.Float64("seconds", 20, "seconds of video to make and decode")
	size := fs.String("size", "1920x1080", "picture size of the synthetic stream (a camera's sub-stream: 640x360)")
	gop := fs.Int("gop", 25, "keyframe interval in frames (cameras use 25-50 at 25 fps)")
	bitrate := fs.String("bitrate", "5M", "encoder bit rate (street cameras: 4-6 Mbit/s at 1080p)")
	rate := fs.Float64("fps", 2, "sampling rate of the reduced-rate mode")
	width := fs.Int("width", 640, "picture width of the reduced-rate mode")
	rounds := fs.Int("rounds", 3, "passes over the video per mode, interleaved; the median counts")
	input := fs.String("input", "", "measure this H.264 file (e.g. a camera recording) instead of a synthetic stream")
	asJSON := fs.Bool("json", false, "print one JSON object as the last line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *seconds <= 0 || *gop <= 0 || *rate <= 0 || *rounds <= 0 {
		return errors.New("eval decode: --seconds, --gop, --fps and --rounds must be positive")
	}
	dir, err := os.MkdirTemp("", "gridwatch-eval-decode-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cam.h264")
	source := fmt.Sprintf("%s testsrc2 + temporal noise, libx264 main veryfast, %s CBR, GOP %d, no B-frames", *size, *bitrate, *gop)
	fmt.Fprintf(stderr, "eval decode: encoding %.0f s of %s...\n", *seconds, *size)
	if *input != "" {
		source = *input
		err = ffmpeg(ctx, "-i", *input, "-t", fmt.Sprint(*seconds), "-map", "0:v:0", "-c", "copy",
			"-bsf:v", "h264_mp4toannexb", "-f", "h264", path)
	} else {
		err = ffmpeg(ctx, "-f", "lavfi", "-i", "testsrc2=rate=25:size="+*size,
			"-vf", "noise=alls=12:allf=t", "-t", fmt.Sprint(*seconds),
			"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-pix_fmt", "yuv420p",
			"-g", fmt.Sprint(*gop), "-keyint_min", fmt.Sprint(*gop), "-sc_threshold", "0", "-bf", "0",
			"-b:v", *bitrate, "-maxrate", *bitrate, "-bufsize", *bitrate,
			"-f", "h264", path)
	}
	if err != nil {
		return err
	}
	stream, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	aus, keys := accessUnits(stream)
	if len(keys) == 0 {
		return errors.New("eval decode: no keyframes in the stream")
	}
	const fps = 25 // of the synthetic stream; a file is assumed to be the same
	videoSeconds := float64(len(aus)) / fps
	mbits := float64(len(stream)) * 8 / videoSeconds / 1e6
	keyBytes := 0
	for _, i := range keys {
		keyBytes += len(aus[i])
	}
	keyKiB := float64(keyBytes) / float64(len(keys)) / 1024
	otherKiB := float64(len(stream)-keyBytes) / float64(max(len(aus)-len(keys), 1)) / 1024

	type mode struct {
		name, key string
		run       func(d *decode.Decoder) (pictures int, size string, err error)
		ms        []float64
		pictures  int
		size      string
	}
	modes := []*mode{
		{name: "keyframes only (cover checks)", key: "keyframe", run: func(d *decode.Decoder) (int, string, error) {
			n, size := 0, ""
			for _, i := range keys {
				f, err := d.DecodeKeyframe(aus[i])
				if err != nil {
					return n, size, fmt.Errorf("keyframe %d: %w", i, err)
				}
				n, size = n+1, fmt.Sprintf("%dx%d", f.Width, f.Height)
			}
			return n, size, nil
		}},
		{name: fmt.Sprintf("%g fps at %d wide (occupation)", *rate, *width), key: "rate2fps", run: func(d *decode.Decoder) (int, string, error) {
			return sample(ctx, d, aus, *rate, *width)
		}},
		{name: "every frame to BGR", key: "allframes", run: func(d *decode.Decoder) (int, string, error) {
			n, size := 0, ""
			for i, au := range aus {
				if i%25 == 0 && ctx.Err() != nil {
					return n, size, ctx.Err()
				}
				fs, err := d.Decode(au)
				if err != nil {
					return n, size, fmt.Errorf("access unit %d: %w", i, err)
				}
				for _, f := range fs {
					n, size = n+1, fmt.Sprintf("%dx%d", f.Width, f.Height)
				}
			}
			fs, err := d.Flush()
			return n + len(fs), size, err
		}},
		// Not a mode: the part of the reduced-rate cost that is decoding
		// (one picture converted per pass).
		{name: "every frame decoded, none converted", key: "decodeonly", run: func(d *decode.Decoder) (int, string, error) {
			return sample(ctx, d, aus, 1/(2*videoSeconds), *width)
		}},
	}
	decoders := make([]*decode.Decoder, len(modes))
	for i := range modes {
		if decoders[i], err = decode.NewH264(); err != nil {
			return err
		}
		defer decoders[i].Close()
	}
	fmt.Fprintf(stderr, "eval decode: %d access units, %d keyframes; %d rounds of %d modes\n", len(aus), len(keys), *rounds, len(modes))
	for round := 0; round < *rounds; round++ {
		for i, m := range modes {
			runtime.GC() // the last mode's garbage is not this one's
			before := cpuTime()
			n, size, err := m.run(decoders[i])
			used := cpuTime() - before
			if err != nil {
				return fmt.Errorf("eval decode: %s: %w", m.name, err)
			}
			m.ms = append(m.ms, float64(used.Microseconds())/1000/videoSeconds)
			m.pictures, m.size = n, size
		}
	}

	median := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	all := median(modes[2].ms)
	res := map[string]any{
		"benchmark":     "decode",
		"source":        source,
		"seconds":       videoSeconds,
		"frames":        len(aus),
		"keyframes":     len(keys),
		"gop":           float64(len(aus)) / float64(len(keys)), // measured: frames per keyframe
		"mbit_per_s":    mbits,
		"keyframe_kib":  keyKiB,
		"other_kib":     otherKiB,
		"rounds":        *rounds,
		"sample_fps":    *rate,
		"sample_width":  *width,
		"cpu":           cpuModel(),
		"gomaxprocs":    runtime.GOMAXPROCS(0),
		"cpu_time_from": "getrusage(RUSAGE_SELF) user+sys",
		"loadavg":       loadAvg(),
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "video\t%.1f s, %d frames, %d keyframes, %.2f Mbit/s (%s)\n", videoSeconds, len(aus), len(keys), mbits, source)
	fmt.Fprintf(tw, "frame sizes\tkeyframes %.0f KiB, others %.0f KiB on average\n", keyKiB, otherKiB)
	fmt.Fprintf(tw, "cpu\t%s, GOMAXPROCS %d, decoder single-threaded, load average %s\n\n", cpuModel(), runtime.GOMAXPROCS(0), loadAvg())
	fmt.Fprintf(tw, "mode\tpictures out\tCPU ms per video-s\tvs every frame\tcameras per core\trounds (ms per video-s)\n")
	for _, m := range modes {
		ms := median(m.ms)
		var each []string
		for _, v := range m.ms {
			each = append(each, fmt.Sprintf("%.1f", v))
		}
		fmt.Fprintf(tw, "%s\t%d at %s\t%.1f\t%.3f\t%.1f\t%s\n", m.name, m.pictures, m.size, ms, ms/all, 1000/ms, strings.Join(each, " "))
		res[m.key+"_ms_per_s"] = ms
		res[m.key+"_pictures"] = m.pictures
		if m.key != "allframes" {
			res[m.key+"_ratio"] = ms / all
		}
		res["cameras_per_core_"+strings.TrimPrefix(m.key, "rate")] = 1000 / ms
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !*asJSON {
		return nil
	}
	return json.NewEncoder(stdout).Encode(res)
}

func sample(ctx context.Context, d *decode.Decoder, aus [][]byte, fps float64, width int) (int, string, error) {
	s := decode.NewSampler(d, fps, width)
	defer s.Reset()
	n, size := 0, ""
	for i, au := range aus {
		if i%25 == 0 && ctx.Err() != nil {
			return n, size, ctx.Err()
		}
		out, err := s.Decode(au, time.Duration(i)*time.Second/25)
		if err != nil {
			return n, size, fmt.Errorf("access unit %d: %w", i, err)
		}
		for _, f := range out {
			n, size = n+1, fmt.Sprintf("%dx%d", f.Width, f.Height)
		}
	}
	return n, size, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the machine's 1-minute load average: CPU time per unit of work
// grows when other processes share the caches and cores.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b) + " unknown")[0]
}

func ffmpeg(ctx context.Context, args ...string) error {
	args = append([]string{"-v", "error", "-nostdin", "-y"}, args...)
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// accessUnits groups an elementary stream into Annex-B access units, SPS and
// PPS in front of every keyframe as edge/rtsp delivers them; keys indexes
// the keyframes.
func accessUnits(stream []byte) (aus [][]byte, keys []int) {
	var params h264.Params
	for _, au := range h264.AccessUnits(stream) {
		b, key := params.Complete(au)
		if key {
			keys = append(keys, len(aus))
		}
		aus = append(aus, b)
	}
	return aus, keys
}
