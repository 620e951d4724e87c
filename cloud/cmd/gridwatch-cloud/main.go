// Command gridwatch-cloud runs the operations center.
//
//	gridwatch-cloud serve [flags]    ingest, cases, web UI and API
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

	"golang.org/x/sync/errgroup"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/ingest"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/web"
)

// commands holds the subcommands other than serve; each lives in its own
// file (imagery.go, bench.go, ...) and registers itself in init.
var commands = map[string]func(ctx context.Context, args []string) error{}

const usage = `usage:
  gridwatch-cloud serve [--http 127.0.0.1:8080] [--mqtt-listen 127.0.0.1:1884 | --broker tcp://HOST:PORT]
                        [--data DIR] [--registry DIR] [--log-level info]
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
	case "serve":
		err = serve(ctx, os.Args[2:])
	default:
		if f, ok := commands[os.Args[1]]; ok {
			err = f(ctx, os.Args[2:])
			break
		}
		err = fmt.Errorf("unknown command %q\n%s", os.Args[1], usage)
	case "-h", "--help", "help":
		fmt.Print(usage)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "gridwatch-cloud:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http", "127.0.0.1:8080", "web UI and API listen address")
	mqttListen := fs.String("mqtt-listen", broker.DefaultAddr, "embedded MQTT broker listen address (ignored with --broker)")
	brokerURL := fs.String("broker", "", "external MQTT broker URL (e.g. tcp://127.0.0.1:1883); empty runs the embedded broker")
	dataDir := fs.String("data", "_demo/cloud", "data directory (SQLite database, evidence files)")
	regDir := fs.String("registry", "", "registry directory to import (departments.csv, streets.csv, grid.geojson, facilities.csv); empty uses the built-in demo district")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Parse(args)
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	reg := registry.Demo()
	if *regDir != "" {
		var err error
		if reg, err = registry.LoadDir(*regDir); err != nil {
			return err
		}
	}
	d, st, cl, fa := reg.Counts()
	log.Info("registry loaded", "departments", d, "streets", st, "grid_cells", cl, "facilities", fa)

	db, err := store.OpenSQLite(ctx, filepath.Join(*dataDir, "gridwatch.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	ev, err := evidence.Open(filepath.Join(*dataDir, "evidence"))
	if err != nil {
		return err
	}
	url := *brokerURL
	if url == "" {
		b, err := broker.Start(*mqttListen, log.With("component", "broker"))
		if err != nil {
			return err
		}
		defer b.Close()
		url = b.URL()
		log.Info("embedded MQTT broker listening", "addr", b.Addr())
	}
	engine := &cases.Engine{Store: db, Registry: reg, Log: log.With("component", "cases")}
	in := &ingest.Ingest{BrokerURL: url, ClientID: "gridwatch-cloud", Applier: engine, Sink: db,
		Log: log.With("component", "ingest")}
	srv := &web.Server{Store: db, Evidence: ev, Log: log.With("component", "web")}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return in.Run(ctx) })
	g.Go(func() error {
		log.Info("operations center listening", "url", "http://"+*httpAddr)
		return srv.Listen(ctx, *httpAddr)
	})
	return g.Wait()
}
