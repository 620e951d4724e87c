// Command gridwatch-edge runs on the roadside box next to the cameras.
//
//	gridwatch-edge run --config FILE        run the agent
//	gridwatch-edge check-config FILE        validate a device config and exit
//	gridwatch-edge simulate --seed N --out DIR   render the skeleton street scene (MPEG-TS + truth.json)
//	gridwatch-edge eval NAME ...            run a benchmark and print its table
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gridwatch/gridwatch/edge/agent"
	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/sim"
)

// commands holds further subcommands, each in its own file registering
// itself in init.
var commands = map[string]func(ctx context.Context, args []string) error{}

const usage = `usage:
  gridwatch-edge run --config FILE [--log-level info]
  gridwatch-edge check-config FILE
  gridwatch-edge simulate [--seed N] [--duration 60s] --out DIR
  gridwatch-edge eval NAME [flags] [--json]   benchmarks (see eval_*.go)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(ctx, os.Args[2:])
	case "check-config":
		err = checkConfig(os.Args[2:])
	case "simulate":
		err = simulate(ctx, os.Args[2:])
	case "eval":
		err = evalCmd(ctx, os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		if f, ok := commands[os.Args[1]]; ok {
			err = f(ctx, os.Args[2:])
			break
		}
		err = fmt.Errorf("unknown command %q\n%s", os.Args[1], usage)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "gridwatch-edge:", err)
		os.Exit(1)
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	path := fs.String("config", "", "device config file (YAML)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Parse(args)
	if *path == "" {
		return errors.New("run: --config is required")
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	return agent.Run(ctx, cfg, log)
}

func checkConfig(args []string) error {
	if len(args) != 1 {
		return errors.New("check-config: want exactly one FILE")
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		return err
	}
	covers := 0
	for _, c := range cfg.Cameras {
		covers += len(c.Covers)
	}
	fmt.Printf("%s: ok (device %s, %d cameras, %d covers)\n", args[0], cfg.Device, len(cfg.Cameras), covers)
	return nil
}

func simulate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ExitOnError)
	seed := fs.Int64("seed", 1, "scene seed (same seed, same video)")
	dur := fs.Duration("duration", 0, "override the scene length (default: the scene's own)")
	out := fs.String("out", "", "output directory (scene.ts and truth.json)")
	fs.Parse(args)
	if *out == "" {
		return errors.New("simulate: --out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	sc := sim.Skeleton(*seed)
	if *dur > 0 {
		sc.Duration = *dur
	}
	ts := filepath.Join(*out, "scene.ts")
	start := time.Now()
	lastPct := -1
	truth, err := sc.Render(ctx, ts, func(done, total int) {
		if pct := done * 100 / total; pct/10 != lastPct/10 || done == total {
			lastPct = pct
			fmt.Fprintf(os.Stderr, "\rsimulate: rendering %3d%% (%d/%d frames)", pct, done, total)
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	if err := sim.WriteTruth(filepath.Join(*out, "truth.json"), truth); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "simulate: wrote %s and truth.json in %v\n", ts, time.Since(start).Round(100*time.Millisecond))
	return nil
}
