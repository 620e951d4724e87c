package broker_test

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gridwatch/gridwatch/cloud/broker"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// A hash written by Debian's mosquitto_passwd 2.0.11 for password "secret1":
// the embedded broker must accept the same file a Mosquitto uses.
const mosquittoLine = "box-a:$7$101$QQri8ry503WWn6eF$mElqUG6YgGSiXEtG6umm+yn9MtTEa5H9CweG2mWWeN1CygyMyqPzFsTv++xs6TIsTr4QLHhu1IMlo8zq0CgVPg=="

func TestCredentialsReadMosquittoPasswdFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, []byte("# boxes\n\n"+mosquittoLine+"\n"), 0o600)
	c, err := broker.LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		device, password string
		want             bool
	}{
		{"box-a", "secret1", true},
		{"box-a", "secret2", false},
		{"box-a", "", false},
		{"box-b", "secret1", false},
	} {
		if got := c.Check(tc.device, tc.password); got != tc.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.device, tc.password, got, tc.want)
		}
	}
}

func TestCredentialsRoundTripAndMosquittoPasswdAgrees(t *testing.T) {
	dir := t.TempDir()
	c := broker.NewCredentials()
	pw, err := c.Set("box-chaoyang-0002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set("Box_Bad"); err == nil {
		t.Error("Set accepted a device id that cannot appear in a topic")
	}
	path := filepath.Join(dir, "passwd")
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	back, err := broker.LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Check("box-chaoyang-0002", pw) || back.Check("box-chaoyang-0002", pw+"x") {
		t.Fatal("a written and reloaded file does not check the password it was given")
	}
	// mosquitto_passwd must be able to add to our file without complaint:
	// it parses every line, so a malformed hash of ours would make it fail.
	if bin, err := exec.LookPath("mosquitto_passwd"); err == nil {
		if out, err := exec.Command(bin, "-b", path, "box-x", "pw").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd on our file: %v\n%s", err, out)
		}
		again, err := broker.LoadCredentials(path)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Check("box-x", "pw") || !again.Check("box-chaoyang-0002", pw) {
			t.Fatal("after mosquitto_passwd added a box, ours or its password no longer checks")
		}
	}
}

func TestLoadCredentialsNamesTheBadLine(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"no colon", "box-a\n", ":1: want device-id:$7$"},
		{"bad id", "Box A:$7$101$QQri8ry503WWn6eF$x\n", ":1: device id \"Box A\""},
		{"old hash", "box-a:$6$abc$def\n", ":1: device box-a: password hash: want $7$"},
		{"duplicate", mosquittoLine + "\n" + mosquittoLine + "\n", ":2: device box-a is listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "passwd")
			os.WriteFile(path, []byte(tc.content), 0o600)
			_, err := broker.LoadCredentials(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDeviceMay(t *testing.T) {
	for _, tc := range []struct {
		topic string
		write bool
		want  bool
	}{
		{wire.Topic("box-a", wire.KindReport), true, true},
		{wire.Topic("box-a", wire.KindStatus), true, true},
		{wire.Topic("box-a", wire.KindTelemetry), true, true},
		{wire.Topic("box-b", wire.KindReport), true, false},
		{wire.Topic("box-a", wire.KindConfig), true, false}, // only the cloud pushes configs
		{wire.Topic("box-a", wire.KindCommand), true, false},
		{wire.Topic("box-a", wire.KindCommand), false, true},
		{wire.Topic("box-a", wire.KindConfig), false, true},
		{wire.Topic("box-b", wire.KindCommand), false, false},
		{wire.ReportSubscription, false, false},
		{"gridwatch/v1/dev/box-a/#", false, false},
	} {
		if got := broker.DeviceMay("box-a", tc.topic, tc.write); got != tc.want {
			t.Errorf("DeviceMay(box-a, %q, write=%v) = %v, want %v", tc.topic, tc.write, got, tc.want)
		}
	}
}

// identityBroker starts the embedded broker with two boxes and returns
// their passwords and the service password.
func identityBroker(t *testing.T) (b *broker.Broker, pwA, pwB, svc string, logs *syncBuffer) {
	t.Helper()
	creds := broker.NewCredentials()
	pwA, _ = creds.Set("box-a")
	pwB, _ = creds.Set("box-b")
	svc = broker.NewPassword()
	logs = new(syncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	b, err := broker.StartAuth("127.0.0.1:0", broker.Auth{Devices: creds, Service: "gridwatch-cloud", ServicePassword: svc},
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, pwA, pwB, svc, logs
}

// dial connects as user/password and returns the client and the connect error.
func dial(url, client, user, password string, got chan<- message) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(client).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true).
		SetProtocolVersion(4) // no fallback to 3.1: one refusal per attempt
	if got != nil {
		opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			got <- message{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()}
		})
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return c, os.ErrDeadlineExceeded
	}
	return c, tok.Error()
}

func TestEmbeddedBrokerRefusesUnknownDevicesAndWrongPasswords(t *testing.T) {
	b, pwA, _, svc, logs := identityBroker(t)
	for _, tc := range []struct {
		name, user, password string
		ok                   bool
	}{
		{"box with its password", "box-a", pwA, true},
		{"service identity", "gridwatch-cloud", svc, true},
		{"wrong password", "box-a", "guess", false},
		{"another box's password", "box-b", pwA, false},
		{"unknown device", "box-z", pwA, false},
		{"anonymous", "", "", false},
		{"service with a box's password", "gridwatch-cloud", pwA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(b.URL(), "c-"+strings.ReplaceAll(tc.name, " ", "-"), tc.user, tc.password, nil)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
			c.Disconnect(50)
		})
	}
	if got := b.Refusals().Connects; got != 5 {
		t.Errorf("Refusals().Connects = %d, want 5", got)
	}
	if !strings.Contains(logs.String(), "broker refused a connection") {
		t.Error("refused connections are not logged")
	}
}

func TestEmbeddedBrokerLetsABoxPublishOnlyAsItself(t *testing.T) {
	b, pwA, pwB, svc, logs := identityBroker(t)
	cloudGot := make(chan message, 16)
	cloud, err := dial(b.URL(), "cloud", "gridwatch-cloud", svc, cloudGot)
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Disconnect(50)
	// The cloud subscribes the way ingest does, shared subscription included.
	wait(t, "cloud subscribe", cloud.SubscribeMultiple(map[string]byte{
		"$share/cloud/" + wire.ReportSubscription: 1, wire.StatusSubscription: 1}, nil))

	boxA, err := dial(b.URL(), "edge-box-a", "box-a", pwA, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, "box-a publishes its own report", boxA.Publish(wire.Topic("box-a", wire.KindReport), 1, false, "mine"))
	if m := receive(t, cloudGot); m.topic != wire.Topic("box-a", wire.KindReport) || m.payload != "mine" {
		t.Fatalf("cloud got %+v, want box-a's own report", m)
	}

	// box-a tries to publish into box-b's topic: on MQTT 3.1.1 the broker
	// disconnects it, and the cloud never sees the message.
	tok := boxA.Publish(wire.Topic("box-b", wire.KindReport), 1, false, "forged")
	tok.WaitTimeout(2 * time.Second)
	select {
	case m := <-cloudGot:
		t.Fatalf("the cloud received a forged message: %+v", m)
	case <-time.After(500 * time.Millisecond):
	}
	if got := b.Refusals().Publishes; got != 1 {
		t.Errorf("Refusals().Publishes = %d, want 1", got)
	}
	if !strings.Contains(logs.String(), "broker refused a publish") || !strings.Contains(logs.String(), "device=box-a") {
		t.Errorf("the forged publish is not logged with the device:\n%s", logs)
	}

	// A box may subscribe to its own commands, not to another box's or to everyone's reports.
	boxB, err := dial(b.URL(), "edge-box-b", "box-b", pwB, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer boxB.Disconnect(50)
	wait(t, "box-b subscribes to its commands", boxB.Subscribe(wire.Topic("box-b", wire.KindCommand), 1, nil))
	for _, filter := range []string{wire.Topic("box-a", wire.KindCommand), wire.ReportSubscription} {
		st := boxB.Subscribe(filter, 1, nil).(*mqtt.SubscribeToken)
		st.WaitTimeout(5 * time.Second)
		if code := st.Result()[filter]; code != 0x80 {
			t.Errorf("box-b subscribing to %s: return code %#x, want 0x80 (refused)", filter, code)
		}
	}
	if got := b.Refusals().Subscribes; got != 2 {
		t.Errorf("Refusals().Subscribes = %d, want 2", got)
	}
	// And the cloud can still reach box-b's command topic.
	wait(t, "cloud publishes a command", cloud.Publish(wire.Topic("box-b", wire.KindCommand), 1, false, "replay"))
}

// TestMosquittoWithGeneratedFiles runs a real Mosquitto with the files
// `gridwatch-cloud devices mosquitto-acl` writes: box A's own messages reach
// the cloud, its message into box B's topic does not, and a box with a wrong
// password or none is refused.
func TestMosquittoWithGeneratedFiles(t *testing.T) {
	if _, err := broker.MosquittoPath(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	creds := broker.NewCredentials()
	pwA, _ := creds.Set("box-a")
	creds.Set("box-b")
	svc, err := broker.MosquittoFiles(filepath.Join(dir, "acl"), creds, broker.DefaultServiceIdentity)
	if err != nil {
		t.Fatal(err)
	}
	again, err := broker.MosquittoFiles(filepath.Join(dir, "acl"), creds, broker.DefaultServiceIdentity)
	if err != nil || again != svc {
		t.Fatalf("regenerating changed the service password (%v): the running cloud would be locked out", err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "acl", broker.MosquittoConfFile))
	if err != nil {
		t.Fatal(err)
	}
	// Started as root, Mosquitto would drop to its own user, which cannot
	// read the test's private directory (in production: chown mosquitto).
	m, err := broker.StartMosquitto(dir, "user root\n"+string(conf))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.Log())
		}
	}()

	cloudGot := make(chan message, 16)
	cloud, err := dial(m.URL(), "cloud", broker.DefaultServiceIdentity, svc, cloudGot)
	if err != nil {
		t.Fatalf("the service identity is refused: %v", err)
	}
	defer cloud.Disconnect(50)
	wait(t, "cloud subscribe", cloud.SubscribeMultiple(map[string]byte{
		"$share/cloud/" + wire.ReportSubscription: 1, wire.TelemetrySubscription: 1}, nil))

	for _, tc := range []struct{ user, password string }{{"box-a", "guess"}, {"", ""}, {"box-z", pwA}} {
		if c, err := dial(m.URL(), "intruder", tc.user, tc.password, nil); err == nil {
			c.Disconnect(50)
			t.Errorf("mosquitto accepted user %q with a wrong password", tc.user)
		}
	}

	forger, err := dial(m.URL(), "edge-box-a", "box-a", pwA, nil)
	if err != nil {
		t.Fatalf("box-a is refused: %v", err)
	}
	// Mosquitto 2.0.11 answers a denied QoS 1 publish with a PUBACK carrying
	// a v5 reason code, on which a 3.1.1 client drops the connection; either
	// way, the cloud must never see the message.
	forger.Publish(wire.Topic("box-b", wire.KindReport), 1, false, "forged").WaitTimeout(2 * time.Second)
	forger.Disconnect(50)
	boxA, err := dial(m.URL(), "edge-box-a", "box-a", pwA, nil)
	if err != nil {
		t.Fatalf("box-a is refused after its forged publish: %v", err)
	}
	defer boxA.Disconnect(50)
	wait(t, "own publish", boxA.Publish(wire.Topic("box-a", wire.KindReport), 1, false, "mine"))
	wait(t, "own telemetry", boxA.Publish(wire.Topic("box-a", wire.KindTelemetry), 1, false, "tm"))
	for _, want := range []string{wire.Topic("box-a", wire.KindReport), wire.Topic("box-a", wire.KindTelemetry)} {
		if got := receive(t, cloudGot); got.topic != want {
			t.Fatalf("cloud got %s %q, want %s (box-a's own messages only, in order)", got.topic, got.payload, want)
		}
	}
	// box-a may not read box-b's commands.
	got := make(chan message, 4)
	spy, err := dial(m.URL(), "edge-box-a-spy", "box-a", pwA, got)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Disconnect(50)
	spy.Subscribe(wire.Topic("box-b", wire.KindCommand), 1, nil).WaitTimeout(5 * time.Second)
	wait(t, "cloud command to box-b", cloud.Publish(wire.Topic("box-b", wire.KindCommand), 1, false, "cmd"))
	select {
	case m := <-got:
		t.Fatalf("box-a read box-b's command: %+v", m)
	case <-time.After(500 * time.Millisecond):
	}
}

// A credentials file from any bytes loads or gives an error naming the line;
// what loads lists only valid device ids.
func FuzzLoadCredentials(f *testing.F) {
	f.Add([]byte("box-a:" + broker.HashPassword("pw") + "\n"))
	f.Add([]byte("# comment\n\nbox-b:$7$101$c2FsdA==$a2V5\n"))
	f.Add([]byte("box-c\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "passwd")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := broker.LoadCredentials(p)
		if err != nil {
			return
		}
		for _, id := range c.Devices() {
			if wire.ValidDeviceID(id) != nil {
				t.Fatalf("loaded an invalid device id %q", id)
			}
		}
	})
}
