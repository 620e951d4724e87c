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
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/cloud/calendar"
	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/command"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/ingest"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/taxonomy"
	"github.com/gridwatch/gridwatch/cloud/telemetry"
	"github.com/gridwatch/gridwatch/cloud/web"
)

// commands holds the subcommands other than serve; each lives in its own
// file (imagery.go, bench.go, ...) and registers itself in init.
var commands = map[string]func(ctx context.Context, args []string) error{}

const usage = `usage:
  gridwatch-cloud serve [--http 127.0.0.1:8080]
                        [--mqtt-listen 127.0.0.1:1884 (--devices FILE | --insecure-broker)
                         | --broker tcp://HOST:PORT [--broker-user NAME --broker-password-file FILE]]
                        [--data DIR | --postgres DSN] [--registry DIR] [--fleet DIR] [--tokens FILE]
                        [--influx URL [--influx-db NAME]] [--taxonomy FILE] [--calendar FILE] [--log-level info]
  gridwatch-cloud imagery eval|train|compare ...
  gridwatch-cloud bench ingest [--json]
  gridwatch-cloud registry check DIR [--fleet DIR] | export-demo DIR | diff OLD NEW
  gridwatch-cloud devices add|remove|list|mosquitto-acl --credentials FILE ...
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
	fleetDir := fs.String("fleet", "", "directory of box configs (firmware-config/*.yaml): which boxes and cameras exist and what each watches; reports they do not account for are refused. Empty: no check")
	tokens := fs.String("tokens", "", "API tokens file (YAML: users with token, name, role, dept); empty uses the demo tokens")
	taxFile := fs.String("taxonomy", "", "case categories file; empty uses the built-in table")
	calFile := fs.String("calendar", "", "working-time calendar file; empty uses the built-in Beijing calendar")
	influxURL := fs.String("influx", "", "InfluxDB 1.8 URL for telemetry history (e.g. http://127.0.0.1:8086); empty: no history")
	influxDB := fs.String("influx-db", telemetry.DefaultDatabase, "InfluxDB database (retention policy autogen)")
	devicesFile := fs.String("devices", "", "device credentials (mosquitto_passwd format, `gridwatch-cloud devices add`): the embedded broker lets only these boxes in, each publishing only as itself")
	insecure := fs.Bool("insecure-broker", false, "run the embedded broker without device identity: any client may publish as any box (development only)")
	brokerUser := fs.String("broker-user", "", "the cloud's user name at the external broker (`devices mosquitto-acl` makes one)")
	brokerPwFile := fs.String("broker-password-file", "", "file holding the cloud's password at the external broker")
	pgDSN := fs.String("postgres", "", "PostgreSQL DSN (postgres://user@host:5432/db); empty uses SQLite in --data")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	confirmEvery := fs.Duration("confirm-every", 5*time.Second, "how often a box is told how far its messages are stored, so it may forget them (negative: never)")
	silence := fs.Duration("device-silence", 90*time.Second, "a box that sends nothing for this long gets a device-fault case")
	offline := fs.Duration("device-offline", time.Minute, "a box whose status says offline (last will) for this long gets a device-fault case")
	camDown := fs.Duration("camera-down", 5*time.Minute, "a camera of an online box that is disconnected or without pictures for this long gets a device-fault case")
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
	regSource := "built-in demo district"
	if *regDir != "" {
		regSource = *regDir
	}
	regVersion := registry.NewVersion(reg, regSource, importer(), time.Now())
	log.Info("registry loaded", "version", regVersion.ID, "sha256", regVersion.SHA256, "source", regSource,
		"by", regVersion.LoadedBy, "departments", regVersion.Departments, "streets", regVersion.Streets,
		"grid_cells", regVersion.Cells, "facilities", regVersion.Facilities)

	var fleet *registry.Fleet
	if *fleetDir != "" {
		var err error
		if fleet, err = registry.LoadFleetDir(*fleetDir, reg); err != nil {
			return fmt.Errorf("--fleet: %w", err)
		}
		boxes, cams := fleet.Counts()
		log.Info("fleet loaded", "source", *fleetDir, "boxes", boxes, "cameras", cams)
	}

	var db *store.Store
	var err error
	if *pgDSN != "" {
		db, err = store.OpenPostgres(ctx, *pgDSN)
	} else {
		db, err = store.OpenSQLite(ctx, filepath.Join(*dataDir, "gridwatch.db"))
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.RecordRegistryVersion(ctx, regVersion); err != nil {
		return err
	}
	ev, err := evidence.Open(filepath.Join(*dataDir, "evidence"))
	if err != nil {
		return err
	}
	url, svcUser, svcPassword := *brokerURL, *brokerUser, ""
	var emb *broker.Broker
	switch {
	case url != "" && (*devicesFile != "" || *insecure):
		return errors.New("--devices and --insecure-broker are for the embedded broker; with --broker the broker checks identity (gridwatch-cloud devices mosquitto-acl)")
	case url != "":
		if (*brokerUser == "") != (*brokerPwFile == "") {
			return errors.New("--broker-user and --broker-password-file go together")
		}
		if *brokerPwFile != "" {
			if svcPassword, err = broker.ReadSecret(*brokerPwFile); err != nil {
				return fmt.Errorf("--broker-password-file: %w", err)
			}
		}
	case *devicesFile != "" && *insecure:
		return errors.New("--devices and --insecure-broker exclude each other")
	case *devicesFile != "":
		creds, err := broker.LoadCredentials(*devicesFile)
		if err != nil {
			return fmt.Errorf("--devices: %w", err)
		}
		// The cloud's own clients get a password that lives only in this process.
		svcUser, svcPassword = broker.DefaultServiceIdentity, broker.NewPassword()
		if emb, err = broker.StartAuth(*mqttListen, broker.Auth{Devices: creds, Service: svcUser, ServicePassword: svcPassword},
			log.With("component", "broker")); err != nil {
			return err
		}
		log.Info("embedded MQTT broker listening; boxes publish only as themselves", "addr", emb.Addr(), "devices", len(creds.Devices()))
	case *insecure:
		if emb, err = broker.Start(*mqttListen, log.With("component", "broker")); err != nil {
			return err
		}
		log.Warn("INSECURE embedded MQTT broker (--insecure-broker): any client may connect and publish as any box; use --devices FILE outside development",
			"addr", emb.Addr())
	default:
		return errors.New("the embedded broker needs --devices FILE (box credentials: gridwatch-cloud devices add) or, for development only, --insecure-broker")
	}
	if emb != nil {
		defer emb.Close()
		url = emb.URL()
	}
	users := web.DemoUsers()
	if *tokens != "" {
		if users, err = web.LoadUsers(*tokens); err != nil {
			return err
		}
	} else {
		log.Warn("using the demo API tokens (demo-verifier, demo-power, ...): pass --tokens in production")
	}
	tax := taxonomy.Default()
	if *taxFile != "" {
		if tax, err = taxonomy.Load(*taxFile); err != nil {
			return err
		}
	}
	cal := calendar.Default()
	if *calFile != "" {
		if cal, err = calendar.Load(*calFile); err != nil {
			return err
		}
	}
	engine := &cases.Engine{Store: db, Registry: reg, Log: log.With("component", "cases"), Taxonomy: tax, Calendar: cal, Fleet: fleet}
	in := &ingest.Ingest{BrokerURL: url, ClientID: "gridwatch-cloud", Username: svcUser, Password: svcPassword,
		Applier: engine, Sink: db, Log: log.With("component", "ingest"), ConfirmEvery: *confirmEvery}
	var hist *telemetry.History
	if *influxURL != "" {
		tcfg := telemetry.Config{URL: *influxURL, Database: *influxDB, Token: os.Getenv("GRIDWATCH_INFLUX_TOKEN"),
			Log: log.With("component", "telemetry")}
		tw, err := telemetry.NewWriter(tcfg)
		if err != nil {
			return err
		}
		defer func() {
			if err := tw.Close(); err != nil {
				log.Warn("telemetry", "err", err)
			}
		}()
		in.OnTelemetry, in.OnDetection = tw.Telemetry, tw.Detection
		if hist, err = telemetry.NewHistory(tcfg); err != nil {
			return err
		}
		defer hist.Close()
	} else {
		log.Info("no --influx: the fleet page shows current state only; history needs InfluxDB")
	}
	cmds := command.DialAs(url, "gridwatch-cloud-commands", svcUser, svcPassword, log.With("component", "commands"))
	defer cmds.Close()
	status := func() any {
		st := map[string]any{"registry": regVersion, "ingest": in.Stats()}
		// Every registry this database has run with: cases name the one they were filed under.
		if vs, err := db.RegistryVersions(ctx); err == nil {
			st["registry_versions"] = vs
		}
		if emb != nil {
			st["broker"] = map[string]any{"embedded": true, "identity": emb.Secure(), "refused": emb.Refusals(), "dropped": emb.Dropped()}
		} else {
			st["broker"] = map[string]any{"embedded": false, "url": url}
		}
		return st
	}
	srv := &web.Server{Status: status, Store: db, Evidence: ev, Engine: engine, Users: users, Configs: cmds, History: hist, Log: log.With("component", "web")}
	ij, err := imageryJobs(ctx, filepath.Join(*dataDir, "imagery-jobs"), engine, ev, log.With("component", "imagery"))
	if err != nil {
		return err
	}
	srv.Imagery = ij

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return in.Run(ctx) })
	g.Go(func() error { return overdueLoop(ctx, engine, log.With("component", "deadlines")) })
	watchdog := &cases.Watchdog{Engine: engine, Silence: *silence, Offline: *offline, CameraDown: *camDown,
		Listening: in.Listening, Log: log.With("component", "watchdog")}
	if err := watchdog.Validate(); err != nil {
		return err
	}
	g.Go(func() error { return watchdog.Run(ctx) })
	g.Go(func() error {
		log.Info("operations center listening", "url", "http://"+*httpAddr)
		return srv.Listen(ctx, *httpAddr)
	})
	return g.Wait()
}

// importer names who loaded the registry, for its version record.
func importer() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if h, err := os.Hostname(); err == nil {
		return "uid " + fmt.Sprint(os.Getuid()) + "@" + h
	}
	return "unknown"
}

// overdueLoop flags tasks past their deadline once a minute.
func overdueLoop(ctx context.Context, e *cases.Engine, log *slog.Logger) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if n, err := e.MarkOverdue(ctx); err != nil && ctx.Err() == nil {
			log.Error("overdue check failed", "err", err)
		} else if n > 0 {
			log.Warn("tasks overdue, escalated", "tasks", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
