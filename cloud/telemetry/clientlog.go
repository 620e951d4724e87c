package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	influxlog "github.com/influxdata/influxdb-client-go/v2/log"
)

// The client logs every failed attempt at error level to stderr through a
// package-global logger. Writer already logs when writes start failing and
// when they recover, so the client's warnings and errors go to slog at debug
// level. The
// global is set once (the client reads it unsynchronised); the slog.Logger
// behind it is the latest one given to NewWriter or NewHistory.
var (
	clientLogOnce sync.Once
	clientLogTo   atomic.Pointer[slog.Logger]
)

func routeClientLog(l *slog.Logger) {
	clientLogTo.Store(l.With("component", "influxdb-client"))
	clientLogOnce.Do(func() { influxlog.Log = clientLog{} })
}

type clientLog struct{}

// log passes on the client's warnings and errors; its info and debug lines
// (one per request) are dropped before they are formatted.
func (clientLog) log(f string, v ...any) {
	l := clientLogTo.Load()
	if l.Enabled(context.Background(), slog.LevelDebug) {
		l.Debug(fmt.Sprintf(f, v...))
	}
}

func (clientLog) Debugf(string, ...any)       {}
func (clientLog) Debug(string)                {}
func (clientLog) Infof(string, ...any)        {}
func (clientLog) Info(string)                 {}
func (c clientLog) Warnf(f string, v ...any)  { c.log(f, v...) }
func (c clientLog) Warn(msg string)           { c.log("%s", msg) }
func (c clientLog) Errorf(f string, v ...any) { c.log(f, v...) }
func (c clientLog) Error(msg string)          { c.log("%s", msg) }
func (clientLog) SetLogLevel(uint)            {}
func (clientLog) LogLevel() uint              { return influxlog.WarningLevel }
func (clientLog) SetPrefix(string)            {}
