// Command faults is the fault-injection suite behind `make faults`. It runs
// the real programs — bin/gridwatch-edge (the agent, or its burst load
// tool), bin/gridwatch-cloud, Mosquitto and the GStreamer RTSP test server —
// on free ports in a temporary directory, breaks one thing per scenario, and
// counts what the box produced against what the cloud stored:
//
//	produced   sequence numbers the box's outbox handed out (reports and heartbeats)
//	delivered  of those, the ones the cloud has: stored reports, plus everything at or
//	           below its contiguous high-water mark (telemetry is not stored one by one)
//	dup cases  cases beyond the one per facility the scenario should make
//	lost       produced − delivered, plus reports the cloud holds with other content
//	           than the box's (a reused sequence number) and evidence files not served
//
// It ends with `faults: N scenarios, lost L, duplicate cases D` and exits 1
// unless L = 0, D = 0 and every scenario ran and passed its own checks (a
// case that should exist, a producer that should have continued). It builds
// nothing (make faults builds first) and needs root only for the disk-full
// scenario's tmpfs.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the cloud's database, read directly
)

const (
	device      = "box-chaoyang-0001" // firmware-config/demo-box.yaml
	powerCover  = "1101050105000123"  // the cover the simulated scene loses and gets back
	sceneSeed   = "7"
	sceneLength = "60s"
)

// Mosquitto configs: the raised limits TOOLCHAIN.md asks for, and the
// defaults (max_queued_messages 1000, max_inflight_messages 20) that drop
// QoS 1 messages under a burst.
const (
	raisedBroker  = "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n"
	defaultBroker = "listener %d 127.0.0.1\nallow_anonymous true\n"
)

type options struct {
	bin    string
	outage time.Duration
	burst  int
	crashN int
	diskN  int
	cut    time.Duration
	settle time.Duration
	quick  bool
	keep   bool
	only   map[string]bool
	root   string
	rtspPy string
	tmp    string
}

// result is one row of the table.
type result struct {
	name                      string
	produced, delivered, lost uint64
	dup                       int
	notes                     []string
	failed                    []string // checks that failed, other than loss and duplicates
}

func (r *result) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}
func (r *result) fail(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

type scenario struct {
	name string
	run  func(e *env, r *result) error
}

func main() {
	o := &options{}
	flag.StringVar(&o.bin, "bin", "bin", "directory holding gridwatch-edge and gridwatch-cloud")
	flag.DurationVar(&o.outage, "outage", 5*time.Minute, "how long the broker stays down")
	flag.IntVar(&o.burst, "burst", 20000, "reports in the burst against a default-config Mosquitto")
	flag.BoolVar(&o.quick, "quick", false, "shorter outages and smaller bursts, for development")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, data) even when everything passed")
	only := flag.String("only", "", "comma-separated scenario names to run (default: all)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.crashN, o.diskN, o.cut, o.settle = 3000, 1000, 15*time.Second, 5*time.Minute
	if o.quick {
		if !set["outage"] {
			o.outage = 20 * time.Second
		}
		if !set["burst"] {
			o.burst = 5000
		}
		o.crashN, o.cut, o.settle = 1500, 5*time.Second, 3*time.Minute
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			o.only[strings.TrimSpace(s)] = true
		}
	}
	if err := o.prepare(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(2)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nfaults: interrupted, stopping everything")
		cleanupAll()
		os.Exit(130)
	}()

	scenarios := []scenario{
		{fmt.Sprintf("broker-down-%v", o.outage), brokerDown},
		{"mosquitto-default-burst", mosquittoDefault},
		{"edge-sigkill", edgeKill},
		{"disk-full", diskFull},
		{"camera-cut", cameraCut},
		{"cloud-down-evidence", cloudDownEvidence},
	}
	fmt.Printf("%-28s %9s %9s %9s %6s  %s\n", "scenario", "produced", "delivered", "dup-cases", "lost", "notes")
	var n int
	var lost uint64
	var dup int
	ok := true
	for i, sc := range scenarios {
		if !o.selected(sc.name) {
			continue
		}
		e := &env{opt: o, dir: filepath.Join(o.tmp, fmt.Sprintf("%d-%s", i+1, sc.name))}
		r := &result{name: sc.name}
		logf("%s: starting (logs in %s)", sc.name, e.dir)
		t0 := time.Now()
		err := os.MkdirAll(e.dir, 0o755)
		if err == nil {
			err = sc.run(e, r)
		}
		e.cleanup()
		if err != nil {
			r.fail("%v", err)
		}
		r.note("%v", time.Since(t0).Round(time.Second))
		n++
		lost += r.lost
		dup += r.dup
		notes := strings.Join(r.notes, "; ")
		if len(r.failed) > 0 {
			ok = false
			notes = "FAILED: " + strings.Join(r.failed, "; ") + " | " + notes
		}
		fmt.Printf("%-28s %9d %9d %9d %6d  %s\n", r.name, r.produced, r.delivered, r.dup, r.lost, notes)
	}
	fmt.Printf("faults: %d scenarios, lost %d, duplicate cases %d\n", n, lost, dup)
	cleanupAll()
	if lost > 0 || dup > 0 || !ok || n == 0 {
		logf("logs and data kept in %s", o.tmp)
		os.Exit(1)
	}
	if o.keep {
		logf("logs and data kept in %s", o.tmp)
	} else {
		os.RemoveAll(o.tmp)
	}
}

// selected reports whether --only names the scenario (or a prefix of it).
func (o *options) selected(name string) bool {
	if o.only == nil {
		return true
	}
	for s := range o.only {
		if s != "" && strings.HasPrefix(name, s) {
			return true
		}
	}
	return false
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "faults: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (o *options) prepare() error {
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			return errors.New("run from inside the gridwatch module (no go.mod above the working directory)")
		}
		dir = filepath.Dir(dir)
	}
	o.root = dir
	if !filepath.IsAbs(o.bin) {
		o.bin = filepath.Join(o.root, o.bin)
	}
	for _, b := range []string{"gridwatch-edge", "gridwatch-cloud"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s: %w (run `make build`, or `make faults`)", b, err)
		}
	}
	if _, err := mosquittoPath(); err != nil {
		return err
	}
	o.rtspPy = os.Getenv("GRIDWATCH_RTSP_SERVER")
	if o.rtspPy == "" {
		o.rtspPy = filepath.Join(o.root, "..", "shared", "tools", "rtsp-server.py")
	}
	if _, err := os.Stat(o.rtspPy); err != nil {
		return fmt.Errorf("RTSP test server: %w (it lives in ../shared/tools, or set $GRIDWATCH_RTSP_SERVER)", err)
	}
	o.tmp, err = os.MkdirTemp("", "gridwatch-faults-")
	return err
}

func mosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", errors.New("mosquitto not installed (hack/install-deps.sh installs it)")
}

// ---- processes ----

// proc is one child process logging to a file in its scenario's directory.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	liveMu sync.Mutex
	live   = map[*proc]bool{}
	mounts = map[string]bool{}
)

func cleanupAll() {
	liveMu.Lock()
	ps := make([]*proc, 0, len(live))
	for p := range live {
		ps = append(ps, p)
	}
	ms := make([]string, 0, len(mounts))
	for m := range mounts {
		ms = append(ms, m)
	}
	liveMu.Unlock()
	for _, p := range ps {
		p.stop(syscall.SIGKILL)
	}
	for _, m := range ms {
		unmount(m)
	}
}

func (e *env) start(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(e.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "==== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		liveMu.Lock()
		delete(live, p)
		liveMu.Unlock()
		close(p.done)
	}()
	liveMu.Lock()
	live[p] = true
	liveMu.Unlock()
	e.procs = append(e.procs, p)
	return p, nil
}

// stop signals the process and waits for it, killing it after 10 s.
func (p *proc) stop(sig syscall.Signal) {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// count returns how many lines of the process's log contain s.
func (p *proc) count(s string) int {
	b, _ := os.ReadFile(p.log)
	return bytes.Count(b, []byte(s))
}

// lastLine returns the last log line containing s.
func (p *proc) lastLine(s string) string {
	b, _ := os.ReadFile(p.log)
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			last = sc.Text()
		}
	}
	return last
}

// ---- one scenario's world ----

type env struct {
	opt   *options
	dir   string
	procs []*proc

	mqttPort, httpPort, rtspPort int
	brokerConf                   string
	cloudArgs                    []string // extra serve flags
	mqtt, cloud, rtsp, edge      *proc
}

func (e *env) cleanup() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop(syscall.SIGTERM)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %v", port, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond every interval until it holds or timeout passes.
func waitFor(what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		time.Sleep(interval)
	}
}

// startBroker starts (or restarts, on the same port) the scenario's Mosquitto.
func (e *env) startBroker(conf string) error {
	if e.mqttPort == 0 {
		var err error
		if e.mqttPort, err = freePort(); err != nil {
			return err
		}
		e.brokerConf = filepath.Join(e.dir, "mosquitto.conf")
		if err := os.WriteFile(e.brokerConf, []byte(fmt.Sprintf(conf, e.mqttPort)), 0o644); err != nil {
			return err
		}
	}
	bin, err := mosquittoPath()
	if err != nil {
		return err
	}
	if e.mqtt, err = e.start("mosquitto", bin, "-c", e.brokerConf); err != nil {
		return err
	}
	return waitTCP(e.mqttPort, 10*time.Second)
}

// startCloud starts (or restarts) gridwatch-cloud against the scenario's
// broker and waits until its ingest is subscribed.
func (e *env) startCloud() error {
	if e.httpPort == 0 {
		var err error
		if e.httpPort, err = freePort(); err != nil {
			return err
		}
	}
	before := 0
	if e.cloud != nil {
		before = e.cloud.count("connected to broker")
	}
	var err error
	args := append([]string{"serve", "--http", fmt.Sprintf("127.0.0.1:%d", e.httpPort),
		"--broker", fmt.Sprintf("tcp://127.0.0.1:%d", e.mqttPort), "--data", filepath.Join(e.dir, "cloud")}, e.cloudArgs...)
	e.cloud, err = e.start("cloud", filepath.Join(e.opt.bin, "gridwatch-cloud"), args...)
	if err != nil {
		return err
	}
	if err := waitTCP(e.httpPort, 20*time.Second); err != nil {
		return err
	}
	if err := waitFor("cloud ingest connects", 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		return e.cloud.count("connected to broker") > before, nil
	}); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the subscription follows the connection
	return nil
}

func (e *env) base() string { return fmt.Sprintf("http://127.0.0.1:%d", e.httpPort) }

var relPathRE = regexp.MustCompile(`(?m)^(\s*(?:cover_model|reference):\s*)([^\s#"']+)`)

// edgeConfig writes the demo box's config pointed at this scenario's servers.
func (e *env) edgeConfig(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(e.opt.root, "firmware-config", "demo-box.yaml"))
	if err != nil {
		return "", err
	}
	rtsp := "rtsp://127.0.0.1:1/cam1" // burst scenarios have no camera
	if e.rtspPort != 0 {
		rtsp = fmt.Sprintf("rtsp://127.0.0.1:%d/cam1", e.rtspPort)
	}
	s := strings.NewReplacer(
		"tcp://127.0.0.1:1884", fmt.Sprintf("tcp://127.0.0.1:%d", e.mqttPort),
		"http://127.0.0.1:8080", e.base(),
		"rtsp://127.0.0.1:8554/cam1", rtsp,
		"data_dir: _demo/edge", "data_dir: "+dataDir,
		// The scenarios' Mosquitto admits anyone; cloud/broker tests device identity.
		"password_file: _demo/broker/", "password_file: "+e.dir+"/",
	).Replace(string(b))
	if err := os.WriteFile(filepath.Join(e.dir, device+".password"), []byte("faults\n"), 0o600); err != nil {
		return "", err
	}
	if !strings.Contains(s, dataDir) {
		return "", errors.New("firmware-config/demo-box.yaml: data_dir line not found")
	}
	// Files the config names relative to itself stay where they are.
	s = relPathRE.ReplaceAllStringFunc(s, func(line string) string {
		m := relPathRE.FindStringSubmatch(line)
		if filepath.IsAbs(m[2]) {
			return line
		}
		return m[1] + filepath.Join(e.opt.root, "firmware-config", m[2])
	})
	p := filepath.Join(e.dir, "box.yaml")
	return p, os.WriteFile(p, []byte(s), 0o644)
}

func (e *env) startBurst(cfg string, n int, extra ...string) (*proc, error) {
	args := append([]string{"burst", "--config", cfg, "--n", strconv.Itoa(n)}, extra...)
	p, err := e.start("burst", filepath.Join(e.opt.bin, "gridwatch-edge"), args...)
	e.edge = p
	return p, err
}

// startRTSP starts (or restarts on the same port) the RTSP test server
// serving file as /cam1, and waits until it accepts connections.
func (e *env) startRTSP(file string) error {
	if e.rtspPort == 0 {
		var err error
		if e.rtspPort, err = freePort(); err != nil {
			return err
		}
	}
	var err error
	e.rtsp, err = e.start("rtsp", "/usr/bin/python3", e.opt.rtspPy, strconv.Itoa(e.rtspPort), "cam1="+file)
	if err != nil {
		return err
	}
	if err := waitFor("RTSP server ready", 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if e.rtsp.exited() {
			return false, errors.New("exited")
		}
		return e.rtsp.count("ready") > 0, nil
	}); err != nil {
		return err
	}
	return waitTCP(e.rtspPort, 5*time.Second)
}

// ---- what the box produced ----

// outboxState is the box's outbox as files on disk: pending messages in
// outbox/, acknowledged ones kept for replay in outbox/sent/.
type outboxState struct {
	highest uint64
	pending int
	reports int // report files on disk (pending + kept)
}

func readOutbox(dir string) (outboxState, error) {
	var st outboxState
	for _, d := range []string{dir, filepath.Join(dir, "sent")} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return st, err
		}
		for _, x := range ents {
			seq, class, ok := parseMsgName(x.Name())
			if !ok {
				continue
			}
			st.highest = max(st.highest, seq)
			if d == dir {
				st.pending++
			}
			if class == "r" {
				st.reports++
			}
		}
	}
	return st, nil
}

func parseMsgName(name string) (seq uint64, class string, ok bool) {
	base, found := strings.CutSuffix(name, ".msg")
	if !found {
		return 0, "", false
	}
	num, class, _ := strings.Cut(base, ".")
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, class, err == nil
}

// edgeReports returns the report payloads still on the box, by seq.
func edgeReports(dir string) (map[uint64][]byte, error) {
	out := map[uint64][]byte{}
	for _, d := range []string{dir, filepath.Join(dir, "sent")} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, x := range ents {
			seq, class, ok := parseMsgName(x.Name())
			if !ok || class != "r" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(d, x.Name()))
			if errors.Is(err, os.ErrNotExist) {
				continue // moved between pending and sent while we listed
			}
			if err != nil {
				return nil, err
			}
			if _, payload, ok := bytes.Cut(b, []byte("\n")); ok {
				out[seq] = payload
			}
		}
	}
	return out, nil
}

// ---- what the cloud has ----

type apiDevice struct {
	Device        string `json:"device"`
	MaxSeq        uint64 `json:"max_seq"`
	SeqContiguous uint64 `json:"seq_contiguous"`
}

type apiCase struct {
	ID             int64     `json:"id"`
	Status         string    `json:"status"`
	FacilityID     string    `json:"facility_id"`
	DetectionState string    `json:"detection_state"`
	RestoredAt     time.Time `json:"restored_at"`
	EvidenceSHA256 string    `json:"evidence_sha256"`
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// contiguous is the cloud's per-device high-water mark: every seq at or
// below it has arrived.
func (e *env) contiguous() (uint64, error) {
	var ds []apiDevice
	if err := getJSON(e.base()+"/api/v1/devices", &ds); err != nil {
		return 0, err
	}
	for _, d := range ds {
		if d.Device == device {
			return d.SeqContiguous, nil
		}
	}
	return 0, nil
}

func (e *env) cases() ([]apiCase, error) {
	var cs []apiCase
	err := getJSON(e.base()+"/api/v1/cases?limit=5000", &cs)
	return cs, err
}

// storedReports reads the report payloads the cloud stored, by seq.
func (e *env) storedReports() (map[uint64][]byte, error) {
	path := filepath.Join(e.dir, "cloud", "gridwatch.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT seq, payload FROM reports WHERE device = ?`, device)
	if err != nil {
		return nil, fmt.Errorf("read cloud reports: %w", err)
	}
	defer rows.Close()
	out := map[uint64][]byte{}
	for rows.Next() {
		var seq int64
		var payload string
		if err := rows.Scan(&seq, &payload); err != nil {
			return nil, err
		}
		out[uint64(seq)] = []byte(payload)
	}
	return out, rows.Err()
}

// ---- settling and counting ----

// settle waits until the box has nothing pending and the cloud's contiguous
// mark covers everything the box produced. It gives up at timeout, or
// earlier when nothing is pending and the mark has not moved for stall
// (replays that would close the hole are no longer coming). It returns what
// the box had produced at the moment everything was accounted for (or at the
// end), so a heartbeat written afterwards is not counted as lost.
func (e *env) settle(dataDir string, timeout time.Duration) (produced uint64, err error) {
	const stall = 60 * time.Second
	deadline := time.Now().Add(timeout)
	var lastHW uint64
	lastMove := time.Now()
	for {
		st, err := readOutbox(filepath.Join(dataDir, "outbox"))
		if err != nil {
			return 0, err
		}
		hw, err := e.contiguous()
		if err != nil && !e.cloud.exited() {
			hw = lastHW // the cloud is busy; try again
		}
		if st.pending == 0 && hw >= st.highest && st.highest > 0 {
			return st.highest, nil
		}
		if hw != lastHW {
			lastHW, lastMove = hw, time.Now()
		}
		if time.Now().After(deadline) || time.Since(lastMove) > stall {
			logf("  not settled: produced %d, pending %d, cloud contiguous %d", st.highest, st.pending, hw)
			return st.highest, nil
		}
		time.Sleep(time.Second)
	}
}

// tally fills produced, delivered and lost for the first `produced`
// sequence numbers, and checks that each report the box still has is the
// one the cloud stored under its seq (a reused seq would differ).
func (e *env) tally(r *result, dataDir string, produced uint64) error {
	hw, err := e.contiguous()
	if err != nil {
		return err
	}
	stored, err := e.storedReports()
	if err != nil {
		return err
	}
	hw = min(hw, produced)
	delivered := hw
	for seq := range stored {
		if seq > hw && seq <= produced {
			delivered++
		}
		if seq > produced {
			r.note("cloud holds seq %d above the box's highest", seq)
		}
	}
	mine, err := edgeReports(filepath.Join(dataDir, "outbox"))
	if err != nil {
		return err
	}
	mismatched := 0
	for seq, payload := range mine {
		if got, ok := stored[seq]; ok && seq <= produced && !bytes.Equal(got, payload) {
			mismatched++
		}
	}
	r.produced, r.delivered = produced, delivered
	r.lost = produced - delivered + uint64(mismatched)
	if mismatched > 0 {
		r.note("%d reports stored with other content than the box's (seq reused)", mismatched)
	}
	if st, err := readOutbox(filepath.Join(dataDir, "outbox")); err == nil && st.pending > 0 {
		r.note("%d still queued on the box", st.pending)
	}
	return nil
}

// countCases compares the cases with what the scenario should make: want
// maps a facility to its expected number of cases (cases for facilities not
// in want are all extra).
func (e *env) countCases(r *result, want map[string]int) ([]apiCase, error) {
	cs, err := e.cases()
	if err != nil {
		return nil, err
	}
	got := map[string]int{}
	for _, c := range cs {
		got[c.FacilityID]++
	}
	for f, n := range got {
		if n > want[f] {
			r.dup += n - want[f]
		}
	}
	for f, n := range want {
		if got[f] < n {
			r.fail("facility %s has %d cases, want %d", f, got[f], n)
		}
	}
	r.note("%d cases", len(cs))
	return cs, nil
}

var burstCases = map[string]int{
	"1101050105000123": 1, "1101050102000456": 1, "1101050107000789": 1, // the demo box's covers
}

// burstReports returns how many reports the last burst run says it wrote.
func burstReports(p *proc) (written, want int, ok bool) {
	line := p.lastLine("burst: done produced")
	if line == "" {
		return 0, 0, false
	}
	_, err := fmt.Sscanf(line[strings.Index(line, "produced"):], "produced %d/%d", &written, &want)
	return written, want, err == nil
}

// burstSent returns how many messages the burst's outbox has sent (replays
// included), from its last progress line.
func burstSent(p *proc) (uint64, bool) {
	line := p.lastLine(", sent ")
	i := strings.Index(line, ", sent ")
	if i < 0 {
		return 0, false
	}
	var n uint64
	_, err := fmt.Sscanf(line[i:], ", sent %d", &n)
	return n, err == nil
}

// ---- scenarios ----

// brokerDown: reports keep coming at a steady rate while Mosquitto is
// killed and stays down for --outage, then comes back on the same port with
// no memory of anyone's session.
func brokerDown(e *env, r *result) error {
	const rate, lead, tail = 5, 5 * time.Second, 10 * time.Second
	if err := e.startBroker(raisedBroker); err != nil {
		return err
	}
	if err := e.startCloud(); err != nil {
		return err
	}
	data := filepath.Join(e.dir, "edge")
	cfg, err := e.edgeConfig(data)
	if err != nil {
		return err
	}
	n := int((lead + e.opt.outage + tail).Seconds() * rate)
	burst, err := e.startBurst(cfg, n, "--rate", strconv.Itoa(rate), "--grace", "5s")
	if err != nil {
		return err
	}
	time.Sleep(lead)
	e.mqtt.stop(syscall.SIGKILL)
	atKill, _ := readOutbox(filepath.Join(data, "outbox"))
	logf("  broker killed at seq %d; down for %v", atKill.highest, e.opt.outage)
	time.Sleep(e.opt.outage)
	atBack, _ := readOutbox(filepath.Join(data, "outbox"))
	if err := e.startBroker(raisedBroker); err != nil {
		return err
	}
	logf("  broker back at seq %d (%d waiting on the box)", atBack.highest, atBack.pending)
	r.note("%d produced while the broker was down, %d queued on the box when it came back", atBack.highest-atKill.highest, atBack.pending)
	if err := waitFor("burst finishes", tail+e.opt.settle, time.Second, func() (bool, error) { return burst.exited(), nil }); err != nil {
		r.fail("%v", err)
	}
	produced, err := e.settle(data, e.opt.settle)
	if err != nil {
		return err
	}
	if err := e.tally(r, data, produced); err != nil {
		return err
	}
	if w, want, ok := burstReports(burst); !ok || w != want {
		r.fail("burst wrote %d of %d reports", w, want)
	}
	r.note("replays %d", burst.count("replay requested"))
	_, err = e.countCases(r, burstCases)
	return err
}

// mosquittoDefault: a default-config Mosquitto (max_queued_messages 1000)
// holds the cloud's persistent session while the cloud is offline and a
// burst arrives; the broker drops what does not fit, the cloud finds the
// holes and asks the box to replay.
func mosquittoDefault(e *env, r *result) error {
	if err := e.startBroker(defaultBroker); err != nil {
		return err
	}
	if err := e.startCloud(); err != nil { // creates the cloud's persistent session
		return err
	}
	e.cloud.stop(syscall.SIGTERM)
	data := filepath.Join(e.dir, "edge")
	cfg, err := e.edgeConfig(data)
	if err != nil {
		return err
	}
	burst, err := e.startBurst(cfg, e.opt.burst, "--grace", "1h")
	if err != nil {
		return err
	}
	logf("  cloud offline; bursting %d reports into Mosquitto", e.opt.burst)
	if err := waitFor("burst drains into the broker", 15*time.Minute, time.Second, func() (bool, error) {
		if burst.exited() {
			return false, errors.New("burst exited")
		}
		return burst.count("burst: drained") > 0, nil
	}); err != nil {
		return err
	}
	logf("  burst handed to the broker; cloud back")
	if err := e.startCloud(); err != nil {
		return err
	}
	produced, err := e.settle(data, e.opt.settle)
	if err != nil {
		return err
	}
	if err := e.tally(r, data, produced); err != nil {
		return err
	}
	burst.stop(syscall.SIGTERM)
	r.note("cloud asked for %d replays, box served %d", e.cloud.count("sequence gap"), burst.count("replay requested"))
	if sent, ok := burstSent(burst); ok {
		r.note("box sent %d messages for %d", sent, produced)
	}
	if n := burst.count("no longer kept"); n > 0 {
		r.note("box could not replay: %s", trimLog(burst.lastLine("no longer kept")))
	}
	_, err = e.countCases(r, burstCases)
	return err
}

// edgeKill: the box is killed with SIGKILL twice in the middle of a burst
// and restarted on the same data directory each time. The cloud does not
// confirm here (--confirm-every -1), so the box keeps a copy of every report
// and each one the cloud stored can be compared with it: a sequence number
// reused after a kill would show as different content.
func edgeKill(e *env, r *result) error {
	e.cloudArgs = []string{"--confirm-every", "-1s"}
	if err := e.startBroker(raisedBroker); err != nil {
		return err
	}
	if err := e.startCloud(); err != nil {
		return err
	}
	data := filepath.Join(e.dir, "edge")
	cfg, err := e.edgeConfig(data)
	if err != nil {
		return err
	}
	n := e.opt.crashN
	burst, err := e.startBurst(cfg, n, "--grace", "5s")
	if err != nil {
		return err
	}
	for i, at := range []int{n / 3, 2 * n / 3} {
		if err := waitFor("burst reaches the kill point", 5*time.Minute, 20*time.Millisecond, func() (bool, error) {
			st, err := readOutbox(filepath.Join(data, "outbox"))
			return st.reports >= at, err
		}); err != nil {
			return err
		}
		burst.stop(syscall.SIGKILL)
		st, err := readOutbox(filepath.Join(data, "outbox"))
		if err != nil {
			return err
		}
		logf("  kill -9 #%d at seq %d (%d reports written, %d pending)", i+1, st.highest, st.reports, st.pending)
		if burst, err = e.startBurst(cfg, n-st.reports, "--grace", "5s"); err != nil {
			return err
		}
	}
	if err := waitFor("burst finishes", e.opt.settle, time.Second, func() (bool, error) { return burst.exited(), nil }); err != nil {
		r.fail("%v", err)
	}
	produced, err := e.settle(data, e.opt.settle)
	if err != nil {
		return err
	}
	if err := e.tally(r, data, produced); err != nil {
		return err
	}
	st, _ := readOutbox(filepath.Join(data, "outbox"))
	if st.reports != n {
		r.fail("box holds %d reports after the kills, want %d", st.reports, n)
	}
	r.note("2 kills; %d reports, every stored payload matches the box's", st.reports)
	_, err = e.countCases(r, burstCases)
	return err
}

// diskFull: the box's data directory is a 2 MiB tmpfs, filled by a ballast
// file before the burst starts; the producer must be refused, then continue
// once the ballast is deleted. 1000 reports take more room than the tmpfs
// has, so the outbox must also make room on its own.
func diskFull(e *env, r *result) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root to mount a tmpfs")
	}
	data := filepath.Join(e.dir, "edge")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", data).CombinedOutput(); err != nil {
		return fmt.Errorf("mount tmpfs: %v: %s", err, out)
	}
	liveMu.Lock()
	mounts[data] = true
	liveMu.Unlock()
	defer func() {
		e.cleanup() // nothing may hold the tmpfs when it is unmounted
		unmount(data)
	}()
	if err := e.startBroker(raisedBroker); err != nil {
		return err
	}
	if err := e.startCloud(); err != nil {
		return err
	}
	cfg, err := e.edgeConfig(data)
	if err != nil {
		return err
	}
	ballast := filepath.Join(data, "ballast")
	if err := fill(ballast); err != nil {
		return err
	}
	burst, err := e.startBurst(cfg, e.opt.diskN, "--grace", "5s")
	if err != nil {
		return err
	}
	if err := waitFor("the full disk refuses a report", 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		return burst.count("append refused") >= 3, nil
	}); err != nil {
		return err
	}
	refusedFull := burst.count("append refused")
	os.Remove(ballast)
	logf("  %d appends refused while full; ballast deleted", refusedFull)
	if err := waitFor("burst finishes", e.opt.settle, time.Second, func() (bool, error) { return burst.exited(), nil }); err != nil {
		r.fail("%v", err)
	}
	produced, err := e.settle(data, time.Minute)
	if err != nil {
		return err
	}
	if err := e.tally(r, data, produced); err != nil {
		return err
	}
	burst.stop(syscall.SIGTERM)
	refusedAfter := burst.count("append refused") - refusedFull
	w, want, ok := burstReports(burst)
	if !ok {
		st, _ := readOutbox(filepath.Join(data, "outbox"))
		w, want = st.reports, e.opt.diskN
	}
	r.note("producer refused %d times while full, %d times after space freed; accepted %d of %d", refusedFull, refusedAfter, w, want)
	if w < want {
		// Space came back but the box could not take these: lost events.
		r.lost += uint64(want - w)
		r.fail("the outbox stopped accepting reports after space was freed")
	}
	_, err = e.countCases(r, burstCases)
	return err
}

// fill writes path until the file system is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

func unmount(dir string) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if !mounts[dir] {
		return
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		logf("umount %s: %v: %s", dir, err, out)
		return
	}
	delete(mounts, dir)
}

// scene renders the simulated street once and returns the scene file, a
// copy that starts at `from` seconds (the live camera after a cut), and the
// power cover's missing interval.
func (o *options) scene() (full string, gapFrom, gapTo float64, err error) {
	dir := filepath.Join(o.tmp, "scene")
	full = filepath.Join(dir, "scene.ts")
	if _, err := os.Stat(full); err != nil {
		logf("  rendering the simulated street (%s)", sceneLength)
		cmd := exec.Command(filepath.Join(o.bin, "gridwatch-edge"), "simulate", "--seed", sceneSeed, "--duration", sceneLength, "--out", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", 0, 0, fmt.Errorf("simulate: %v: %s", err, out)
		}
	}
	var truth struct {
		Timeline []struct {
			FacilityID string  `json:"facility_id"`
			State      string  `json:"state"`
			From       float64 `json:"from_s"`
			To         float64 `json:"to_s"`
		} `json:"timeline"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		return "", 0, 0, err
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		return "", 0, 0, fmt.Errorf("truth.json: %w", err)
	}
	for _, iv := range truth.Timeline {
		if iv.FacilityID == powerCover && iv.State == "missing" {
			return full, iv.From, iv.To, nil
		}
	}
	return "", 0, 0, errors.New("truth.json: the power cover is never missing")
}

func cutScene(full string, from float64) (string, error) {
	out := strings.TrimSuffix(full, ".ts") + fmt.Sprintf("-from%.0f.ts", from)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-y", "-ss", fmt.Sprintf("%.2f", from), "-i", full, "-c", "copy", "-f", "mpegts", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ffmpeg: %v: %s", err, b)
	}
	return out, nil
}

// startAgent starts the real edge agent on the simulated camera.
func (e *env) startAgent(data string) (err error) {
	cfg, err := e.edgeConfig(data)
	if err != nil {
		return err
	}
	e.edge, err = e.start("edge", filepath.Join(e.opt.bin, "gridwatch-edge"), "run", "--config", cfg)
	return err
}

func (e *env) powerCase() (apiCase, bool, error) {
	cs, err := e.cases()
	if err != nil {
		return apiCase{}, false, err
	}
	for _, c := range cs {
		if c.FacilityID == powerCover {
			return c, true, nil
		}
	}
	return apiCase{}, false, nil
}

// cameraCut: the RTSP server dies while the cover is missing (after the
// case opened) and comes back some seconds later with the live picture —
// the scene from the middle of the gap on, so the cover is still missing and
// is then replaced. The camera must reconnect, and the case stay one.
func cameraCut(e *env, r *result) error {
	full, from, to, err := e.opt.scene()
	if err != nil {
		return err
	}
	resume := (from + to) / 2
	cut, err := cutScene(full, resume)
	if err != nil {
		return err
	}
	data, err := e.startStreet(full)
	if err != nil {
		return err
	}
	if err := waitFor("the missing cover becomes a case", 90*time.Second, 500*time.Millisecond, func() (bool, error) {
		_, ok, err := e.powerCase()
		return ok, err
	}); err != nil {
		return err
	}
	e.rtsp.stop(syscall.SIGKILL)
	logf("  case open; RTSP server killed for %v", e.opt.cut)
	time.Sleep(e.opt.cut)
	if err := e.startRTSP(cut); err != nil {
		return err
	}
	logf("  RTSP server back, playing the scene from %.0f s (cover replaced at %.0f s)", resume, to)
	var c apiCase
	if err := waitFor("the camera sees the cover back", 90*time.Second, 500*time.Millisecond, func() (bool, error) {
		var ok bool
		c, ok, err = e.powerCase()
		return ok && !c.RestoredAt.IsZero(), err
	}); err != nil {
		r.fail("%v", err)
	}
	produced, err := e.settle(data, 2*time.Minute)
	if err != nil {
		return err
	}
	if err := e.tally(r, data, produced); err != nil {
		return err
	}
	r.note("stream cut %v while missing, camera reconnected %d times", e.opt.cut, e.edge.count("camera stream connected")-1)
	if !c.RestoredAt.IsZero() {
		r.note("case restored by the camera")
	}
	_, err = e.countCases(r, map[string]int{powerCover: 1})
	return err
}

// startStreet starts the whole chain on the scene: broker, cloud, the RTSP
// server playing it and the edge agent, whose data directory it returns.
func (e *env) startStreet(scene string) (data string, err error) {
	if err := e.startBroker(raisedBroker); err != nil {
		return "", err
	}
	if err := e.startCloud(); err != nil {
		return "", err
	}
	if err := e.startRTSP(scene); err != nil {
		return "", err
	}
	data = filepath.Join(e.dir, "edge")
	return data, e.startAgent(data)
}

// cloudDownEvidence: the cloud dies after the box connected; the camera
// sees the cover go missing (and, given time, come back) while the cloud is
// down, so reports queue in the broker and JPEGs in the box's evidence queue.
// After the cloud returns, every evidence file any report names must be
// served with the right content.
func cloudDownEvidence(e *env, r *result) error {
	full, _, to, err := e.opt.scene()
	if err != nil {
		return err
	}
	data, err := e.startStreet(full)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := waitFor("the box says it is online", 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		var ds []apiDevice
		err := getJSON(e.base()+"/api/v1/devices", &ds)
		return len(ds) > 0, err
	}); err != nil {
		return err
	}
	e.cloud.stop(syscall.SIGKILL)
	logf("  cloud killed; waiting for reports with evidence")
	// Quick: until the first report with evidence; else also the restore.
	wantReports := 2
	if e.opt.quick {
		wantReports = 1
	}
	if err := waitFor("the box reports with evidence while the cloud is down", time.Duration(to+30)*time.Second, time.Second, func() (bool, error) {
		st, err := readOutbox(filepath.Join(data, "outbox"))
		return st.reports >= wantReports && e.edge.count("evidence upload failed") > 0, err
	}); err != nil {
		return err
	}
	down := time.Since(start)
	if err := e.startCloud(); err != nil {
		return err
	}
	logf("  cloud back after %v", down.Round(time.Second))
	produced, err := e.settle(data, 2*time.Minute)
	if err != nil {
		return err
	}
	if err := e.tally(r, data, produced); err != nil {
		return err
	}
	// Every evidence file any report names.
	reps, err := edgeReports(filepath.Join(data, "outbox"))
	if err != nil {
		return err
	}
	shas := map[string]bool{}
	for _, b := range reps {
		var rep struct {
			Evidence []struct {
				SHA256 string `json:"sha256"`
			} `json:"evidence"`
		}
		if json.Unmarshal(b, &rep) == nil {
			for _, ev := range rep.Evidence {
				shas[ev.SHA256] = true
			}
		}
	}
	missing := map[string]bool{}
	waitFor("every evidence file is served", 90*time.Second, time.Second, func() (bool, error) {
		clear(missing)
		for sha := range shas {
			if !served(e.base(), sha) {
				missing[sha] = true
			}
		}
		return len(missing) == 0, nil
	})
	r.lost += uint64(len(missing))
	r.note("cloud down %v; %d reports with %d evidence files, %d served", down.Round(time.Second), len(reps), len(shas), len(shas)-len(missing))
	if len(shas) == 0 {
		r.fail("no evidence produced")
	}
	_, err = e.countCases(r, map[string]int{powerCover: 1})
	return err
}

// served reports whether the cloud serves the evidence file with content
// that hashes to its name.
func served(base, sha string) bool {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/api/v1/evidence/" + sha)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sha
}

// trimLog shortens a slog text line to its message and attributes.
func trimLog(line string) string {
	if i := strings.Index(line, "msg="); i >= 0 {
		line = line[i:]
	}
	return line
}
