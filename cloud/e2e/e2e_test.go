// Package e2e runs the walking skeleton end to end with real processes: an
// independent RTSP server (GStreamer) plays the simulated street, a real
// Mosquitto started by the test (device identity on: only the known box, publishing
// only as itself) carries the reports, and the gridwatch-edge
// and gridwatch-cloud binaries do the rest. It asserts what an operator
// relies on: the missing cover becomes one case with the right owner and
// grid cell, its evidence is served, a verifier accepts it, it is dispatched
// to the owner and the street office, the camera sees the cover back and the
// case closes, and the owner's on-time score moves.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/edge/rtsp/rtsptest"
)

const (
	powerCover   = "1101050105000123"
	sanlitun     = "110105003"
	sanlitunDept = "street-110105003"
)

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a process for the rest of the test, logging to a file that is
// printed if the test fails.
func start(t *testing.T, name string, logDir string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(logDir, filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- %s log ----\n%s", filepath.Base(name), tail(b, 60))
		}
	})
	return cmd
}

func tail(b []byte, lines int) []byte {
	parts := bytes.Split(b, []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return bytes.Join(parts, []byte("\n"))
}

func build(t *testing.T, root, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out+"/", "./edge/cmd/gridwatch-edge", "./cloud/cmd/gridwatch-cloud")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}

// startMosquitto runs a real Mosquitto of the test's own on a free port,
// with extra configuration lines (e.g. include the device-identity files).
func startMosquitto(t *testing.T, dir, extra string) int {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/mosquitto"); err2 != nil {
			t.Fatal("mosquitto not installed (hack/install-deps.sh installs it)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n%s", port, extra)), 0o644)
	start(t, bin, dir, "-c", conf)
	waitTCP(t, port)
	return port
}

func waitTCP(t *testing.T, port int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

type apiCase struct {
	ID              int64     `json:"id"`
	Status          string    `json:"status"`
	Category        string    `json:"category"`
	FacilityID      string    `json:"facility_id"`
	OwnerDepartment string    `json:"owner_department"`
	GridCell        string    `json:"grid_cell"`
	Street          string    `json:"street"`
	StreetOffice    string    `json:"street_office"`
	Lat             float64   `json:"lat"`
	Lon             float64   `json:"lon"`
	CreatedAt       time.Time `json:"created_at"`
	EvidenceURL     string    `json:"evidence_url"`
	RestoredAt      time.Time `json:"restored_at"`
}

func cases(t *testing.T, base string) []apiCase {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/cases")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var cs []apiCase
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		t.Fatalf("GET /api/v1/cases: %v", err)
	}
	return cs
}

func TestMissingCoverBecomesCase(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs real processes")
	}
	root := moduleRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build(t, root, bin)

	// The scene: the power cover is missing from ~12 s to ~40 s.
	scene := filepath.Join(dir, "scene")
	if b, err := exec.Command(bin+"/gridwatch-edge", "simulate", "--seed", "7", "--duration", "50s", "--out", scene).CombinedOutput(); err != nil {
		t.Fatalf("simulate: %v\n%s", err, b)
	}
	// Production-like broker: only known boxes, each publishing only as itself, set up with the
	// operator's commands (devices add, devices mosquitto-acl).
	creds := filepath.Join(dir, "broker", "devices.passwd")
	for _, args := range [][]string{
		{"devices", "add", "--credentials", creds, "--secrets", dir, "box-chaoyang-0001"},
		{"devices", "mosquitto-acl", "--credentials", creds, "--out", filepath.Join(dir, "broker")},
	} {
		if b, err := exec.Command(bin+"/gridwatch-cloud", args...).CombinedOutput(); err != nil {
			t.Fatalf("gridwatch-cloud %v: %v\n%s", args, err, b)
		}
	}
	identity, err := os.ReadFile(filepath.Join(dir, "broker", "gridwatch.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// user root: started as root, Mosquitto would otherwise read the 0600 password file as "mosquitto".
	mqttPort := startMosquitto(t, dir, "user root\n"+string(identity))
	rtspURL := rtsptest.StartTestServer(t, map[string]string{"cam1": filepath.Join(scene, "scene.ts")})

	httpPort := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	start(t, bin+"/gridwatch-cloud", dir, "serve", "--http", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--broker", fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort), "--data", filepath.Join(dir, "cloud"),
		"--broker-user", "gridwatch-cloud", "--broker-password-file", filepath.Join(dir, "broker", "service.password"))
	waitTCP(t, httpPort)

	// The demo box's config, pointed at this test's servers.
	cfg, err := os.ReadFile(filepath.Join(root, "firmware-config", "demo-box.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		"tcp://127.0.0.1:1884", fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort),
		"http://127.0.0.1:8080", base,
		"rtsp://127.0.0.1:8554/cam1", rtspURL+"/cam1",
		"data_dir: _demo/edge", "data_dir: "+filepath.Join(dir, "edge"),
		"cover_model: ../models/", "cover_model: "+filepath.Join(root, "models")+"/",
		"password_file: _demo/broker/", "password_file: "+dir+"/",
	).Replace(string(cfg))
	cfgPath := filepath.Join(dir, "box.yaml")
	os.WriteFile(cfgPath, []byte(s), 0o644)
	start(t, bin+"/gridwatch-edge", dir, "run", "--config", cfgPath)

	var c apiCase
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if cs := cases(t, base); len(cs) > 0 {
			c = cs[0]
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if c.ID == 0 {
		t.Fatal("no case appeared within 90 s of starting the edge")
	}

	reg := registry.Demo()
	fac, _ := reg.Facility(powerCover)
	cell, ok := reg.CellAt(fac.Lat, fac.Lon)
	if !ok {
		t.Fatal("the demo registry has no cell for the power cover")
	}
	want := apiCase{ID: c.ID, Status: "reported", Category: "0105", FacilityID: powerCover,
		OwnerDepartment: "dept-power", GridCell: cell.Code, Street: sanlitun, StreetOffice: sanlitunDept,
		Lat: fac.Lat, Lon: fac.Lon}
	got := c
	got.CreatedAt, got.EvidenceURL, got.RestoredAt = time.Time{}, "", time.Time{}
	if got != want {
		t.Fatalf("case = %+v\nwant  %+v", got, want)
	}
	if c.CreatedAt.IsZero() {
		t.Error("created_at missing")
	}

	// The evidence URL serves the JPEG (uploads may trail the report a little).
	if c.EvidenceURL == "" {
		t.Fatal("case has no evidence_url")
	}
	var ctype string
	for i := 0; i < 50 && ctype != "image/jpeg"; i++ {
		resp, err := http.Get(base + c.EvidenceURL)
		if err == nil {
			ctype = resp.Header.Get("Content-Type")
			resp.Body.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ctype != "image/jpeg" {
		t.Fatalf("evidence %s: content type %q, want image/jpeg", c.EvidenceURL, ctype)
	}

	// A verifier accepts it: it goes at once to the power company and the
	// street office; the street office puts up warning signs.
	if got := post(t, base+fmt.Sprintf("/api/v1/cases/%d/verify", c.ID), "demo-verifier", `{"accept":true,"reason":"hole visible"}`); got["status"] != "dispatched" {
		t.Fatalf("verify: %v", got)
	}
	var detail struct {
		AnnotatedURL string `json:"annotated_url"`
		Tasks        []struct {
			ID   int64  `json:"id"`
			Dept string `json:"dept"`
			Role string `json:"role"`
		} `json:"tasks"`
	}
	getJSON(t, base+fmt.Sprintf("/api/v1/cases/%d", c.ID), &detail)
	if detail.AnnotatedURL == "" {
		t.Error("the case detail has no annotated snapshot (the edge sends one with every report)")
	}
	depts := map[string]int64{}
	for _, k := range detail.Tasks {
		depts[k.Dept] = k.ID
	}
	if len(depts) != 2 || depts["dept-power"] == 0 || depts[sanlitunDept] == 0 {
		t.Fatalf("tasks %+v, want one for dept-power and one for %s", detail.Tasks, sanlitunDept)
	}
	post(t, base+fmt.Sprintf("/api/v1/tasks/%d/interim", depts[sanlitunDept]), "demo-sanlitun", `{"note":"warning signs up"}`)

	// The owner replaces the cover at ~40 s: the camera itself sees it back,
	// the case closes on the same case, and no other cover ever became a case.
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		cs := cases(t, base)
		if len(cs) != 1 {
			t.Fatalf("%d cases, want exactly 1: %+v", len(cs), cs)
		}
		if cs[0].Status == "closed" {
			if cs[0].RestoredAt.IsZero() {
				t.Fatal("closed without the camera seeing the cover back")
			}
			// The owner's on-time score moves.
			var sc struct {
				Scores []struct {
					Party  string `json:"party"`
					OnTime int    `json:"on_time"`
				} `json:"scores"`
			}
			getJSON(t, base+"/api/v1/scores?kind=department", &sc)
			if len(sc.Scores) != 1 || sc.Scores[0].Party != "dept-power" || sc.Scores[0].OnTime != 1 {
				t.Fatalf("scores after closing: %+v", sc)
			}
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatal("the camera never closed the case")
}

func post(t *testing.T, url, token, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %v", url, resp.Status, m)
	}
	return m
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
