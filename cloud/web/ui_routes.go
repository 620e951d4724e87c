package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/web/ui"
)

// uiRoutes adds the operations center's pages (package ui), the live-update stream and whoami.
func (s *Server) uiRoutes(app *fiber.App) {
	var demo []ui.DemoToken
	if s.Users != nil && s.Users.Demo {
		demo = []ui.DemoToken{}
		for tok, a := range s.Users.byToken {
			demo = append(demo, ui.DemoToken{Token: tok, Name: a.Name, Role: a.Role, Dept: a.Dept})
		}
		sort.Slice(demo, func(i, j int) bool { return demo[i].Token < demo[j].Token })
	}
	u, err := ui.New(ui.Config{Store: s.Store, Registry: s.Engine.Registry, Log: s.Log.With("component", "ui"), DemoTokens: demo, Taxonomy: s.Engine.Taxonomy, Fleet: s.Engine.Fleet})
	if err != nil {
		panic(err) // the templates are embedded: a broken one is a build mistake
	}
	u.Register(app)
	hub := newEventHub(s.Store, s.Log)
	app.Hooks().OnShutdown(func() error { hub.close(); return nil }) // stops the poller
	app.Get("/api/v1/events", hub.serve)
	app.Get("/api/v1/whoami", s.Users.authenticated, func(c *fiber.Ctx) error { return c.JSON(actorOf(c)) })
}

// Live updates. One poller looks at the store every second while anyone listens and tells every
// subscriber when the cases or the devices changed; the pages then fetch what they show. A message
// only says "look again", so a slow client loses nothing by missing one: its buffer is small and the
// newest message replaces the oldest.
const (
	pollEvery     = time.Second
	heartbeat     = 15 * time.Second
	clientBuffer  = 4
	pollWindow    = 2000 // newest cases whose changes the poller notices
	sseWriteGrace = 30 * time.Second
)

type sseMessage struct {
	event string
	data  []byte
}

type eventHub struct {
	store *store.Store
	log   interface{ Warn(string, ...any) }

	mu      sync.Mutex
	subs    map[chan sseMessage]struct{}
	running bool
	closed  bool
	last    map[string]string // event → fingerprint last broadcast
	state   map[string][]byte // event → its latest data, sent to a new subscriber first
}

func newEventHub(st *store.Store, log interface{ Warn(string, ...any) }) *eventHub {
	return &eventHub{store: st, log: log, subs: map[chan sseMessage]struct{}{}, last: map[string]string{}, state: map[string][]byte{}}
}

// subscribe registers a client; the poller starts with the first one.
func (h *eventHub) subscribe() (chan sseMessage, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	ch := make(chan sseMessage, clientBuffer)
	for ev, data := range h.state {
		ch <- sseMessage{ev, data}
	}
	h.subs[ch] = struct{}{}
	if !h.running {
		h.running = true
		go h.poll()
	}
	return ch, true
}

func (h *eventHub) unsubscribe(ch chan sseMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// close ends every stream (on server shutdown) and refuses new ones.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

func (h *eventHub) broadcast(m sseMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[m.event] = m.data
	for ch := range h.subs {
		select {
		case ch <- m:
		default: // full: drop the oldest, keep the newest
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// poll runs while there are subscribers.
func (h *eventHub) poll() {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		h.check()
		<-t.C
		h.mu.Lock()
		if len(h.subs) == 0 || h.closed {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// casesState is the "cases" event's data.
type casesState struct {
	Count     int       `json:"count"` // among the newest pollWindow
	MaxID     int64     `json:"max_id"`
	UpdatedAt time.Time `json:"updated_at"`
	Reported  int       `json:"reported"` // waiting for a verifier
}

type devicesState struct {
	Count    int       `json:"count"`
	Online   int       `json:"online"`
	LastSeen time.Time `json:"last_seen"`
}

func (h *eventHub) check() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cs, err := h.store.Cases(ctx, pollWindow); err != nil {
		h.log.Warn("events: poll cases", "err", err)
	} else {
		st := casesState{Count: len(cs)}
		for _, c := range cs {
			st.MaxID = max(st.MaxID, c.ID)
			if c.UpdatedAt.After(st.UpdatedAt) {
				st.UpdatedAt = c.UpdatedAt
			}
			if c.Status == "reported" {
				st.Reported++
			}
		}
		h.publish("cases", st, fmt.Sprintf("%d/%d/%d/%d", st.Count, st.MaxID, st.UpdatedAt.UnixNano(), st.Reported))
	}
	if ds, err := h.store.Devices(ctx); err != nil {
		h.log.Warn("events: poll devices", "err", err)
	} else {
		st := devicesState{Count: len(ds)}
		fp := ""
		for _, d := range ds {
			if d.Online {
				st.Online++
			}
			if d.LastSeen.After(st.LastSeen) {
				st.LastSeen = d.LastSeen
			}
			fp += fmt.Sprintf("%s:%t:%d;", d.Device, d.Online, d.LastSeen.UnixNano())
		}
		h.publish("devices", st, fp)
	}
}

func (h *eventHub) publish(event string, v any, fingerprint string) {
	h.mu.Lock()
	same := h.last[event] == fingerprint
	h.last[event] = fingerprint
	h.mu.Unlock()
	if same {
		return
	}
	data, _ := json.Marshal(v)
	h.broadcast(sseMessage{event, data})
}

// serve is GET /api/v1/events: text/event-stream with "cases" and "devices" events.
func (h *eventHub) serve(c *fiber.Ctx) error {
	ch, ok := h.subscribe()
	if !ok {
		return fiber.NewError(fiber.StatusServiceUnavailable, "shutting down")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
	conn := c.Context().Conn()
	shutdown := c.Context().Done() // closed when the server starts shutting down
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer h.unsubscribe(ch)
		// The server's write timeout covers the whole response; a stream renews it before each write.
		send := func(s string) bool {
			conn.SetWriteDeadline(time.Now().Add(sseWriteGrace))
			if _, err := w.WriteString(s); err != nil {
				return false
			}
			return w.Flush() == nil
		}
		if !send("retry: 2000\n: gridwatch live updates\n\n") {
			return
		}
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case m, ok := <-ch:
				if !ok {
					return
				}
				if !send("event: " + m.event + "\ndata: " + string(m.data) + "\n\n") {
					return
				}
			case <-shutdown:
				return // a stream never ends by itself: it must not hold up the shutdown
			case <-tick.C:
				if !send(": ping\n\n") { // a write is how a closed connection shows itself
					return
				}
			}
		}
	})
	return nil
}
