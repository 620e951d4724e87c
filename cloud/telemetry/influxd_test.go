package telemetry

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// influxd is a private InfluxDB 1.8.10 started through hack/influxdb.sh, as
// developers and CI start it: data under the test's temporary directory, HTTP
// on a free port.
type influxd struct {
	t    testing.TB
	dir  string
	port int
	URL  string
}

func script(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "hack", "influxdb.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startInfluxd starts a server for this test and stops it when the test ends.
// A missing influxd fails the test: CI installs it, so a skip would hide a
// broken setup.
func startInfluxd(t testing.TB) *influxd {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real influxd (seconds to start); skipped with -short")
	}
	if out, err := exec.Command(script(t), "bin").CombinedOutput(); err != nil {
		t.Fatalf("these tests need a real InfluxDB 1.8.10: %s", strings.TrimSpace(string(out)))
	}
	s := &influxd{t: t, dir: t.TempDir()}
	// A free port can be taken by another test process before influxd binds it: try a few.
	for attempt := 1; ; attempt++ {
		s.port = freePort(t)
		s.URL = "http://127.0.0.1:" + strconv.Itoa(s.port)
		err := s.tryStart()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			s.t.Fatal(err)
		}
		t.Logf("port %d was taken before influxd bound it; another port", s.port)
	}
	t.Cleanup(s.stop)
	return s
}

// start starts influxd again on the same port and data directory.
func (s *influxd) start() {
	s.t.Helper()
	if err := s.tryStart(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *influxd) tryStart() error {
	cmd := exec.Command(script(s.t), "start", s.dir, strconv.Itoa(s.port), "gridwatch")
	// If the test binary dies, the script's watcher stops the server.
	cmd.Env = append(os.Environ(), "INFLUXD_WATCH_PID="+strconv.Itoa(os.Getpid()))
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "influxd.log"))
		return fmt.Errorf("hack/influxdb.sh start: %v\n%s\ninfluxd.log:\n%s", err, out, log)
	}
	s.t.Logf("influxd up in %s: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(string(out)))
	return nil
}

func (s *influxd) stop() {
	s.t.Helper()
	if out, err := exec.Command(script(s.t), "stop", s.dir).CombinedOutput(); err != nil {
		s.t.Errorf("hack/influxdb.sh stop: %v\n%s", err, out)
	}
}

// up reports whether /ping answers.
func (s *influxd) up() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(s.URL + "/ping")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// deadURL is an address where nothing listens.
func deadURL(t testing.TB) string {
	return fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
